"""`effnet scale-table`: released coefficients beside the compound rule; every format parses."""

from __future__ import annotations

import csv
import io
import itertools
import json

import pytest

from effnet_cli.model import spec as S

# keras.applications.EfficientNetB0..B7(weights=None): count_params() and the sum of its
# trainable weights under Keras 3.15 (the paper's count: B0 5.3M … B7 66M). Pinned here so that
# the suites reading them need no TensorFlow; tests/test_builder.py's
# test_same_network_as_keras_applications builds each reference and checks these tables.
KERAS_COUNT_PARAMS = {
    "efficientnet-b0": 5_330_571, "efficientnet-b1": 7_856_239, "efficientnet-b2": 9_177_569,
    "efficientnet-b3": 12_320_535, "efficientnet-b4": 19_466_823, "efficientnet-b5": 30_562_527,
    "efficientnet-b6": 43_265_143, "efficientnet-b7": 66_658_687,
}  # fmt: skip
KERAS_TRAINABLE_PARAMS = {
    "efficientnet-b0": 5_288_548, "efficientnet-b1": 7_794_184, "efficientnet-b2": 9_109_994,
    "efficientnet-b3": 12_233_232, "efficientnet-b4": 19_341_616, "efficientnet-b5": 30_389_784,
    "efficientnet-b6": 43_040_704, "efficientnet-b7": 66_347_960,
}  # fmt: skip


def _json(cli, *args):
    result = cli("scale-table", "--json", *args)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def test_default_rows_are_b0_to_b7_with_keras_counts_and_paper_figures(cli):
    document = _json(cli)
    assert document["schema"] == "effnet.scale-table/1"
    rows = document["rows"]
    assert {row["name"]: row["params"] for row in rows} == KERAS_COUNT_PARAMS
    for row in rows:
        assert abs(row["macs"] / row["published_macs"] - 1) < 0.06
        assert row["published_top1"] == S.PUBLISHED[row["name"].removeprefix("efficientnet-")].top1
    assert rows[0]["params_ratio"] == 1.0 and rows[7]["macs_ratio"] > 90


def test_compound_rule_columns_follow_the_formula(cli):
    document = _json(cli, "--phi", "0,1,2.5,7")
    assert document["alpha"] == 1.2 and document["beta"] == 1.1 and document["gamma"] == 1.15
    assert document["alpha_beta2_gamma2"] == pytest.approx(1.2 * 1.1**2 * 1.15**2)
    rows = {row["phi"]: row for row in document["rows"]}
    assert set(rows) == {0, 1, 2.5, 7}
    for phi, row in rows.items():
        assert row["rule_depth"] == pytest.approx(1.2**phi)
        assert row["rule_width"] == pytest.approx(1.1**phi)
        assert row["rule_resolution"] == round(224 * 1.15**phi)
    # φ = 0 under the rule is B0 exactly.
    assert rows[0.0]["rule_params"] == rows[0.0]["params"] == KERAS_COUNT_PARAMS["efficientnet-b0"]
    assert rows[0.0]["rule_macs"] == rows[0.0]["macs"]
    # A non-integer φ has no released member: only the rule's columns.
    assert rows[2.5]["name"] is None and rows[2.5]["params"] is None
    assert rows[2.5]["rule_params"] > rows[1.0]["rule_params"]


def test_each_rule_step_roughly_doubles_the_macs(cli):
    rows = _json(cli, "--phi", "0,1,2,3,4,5,6,7")["rows"]
    steps = [b["rule_macs"] / a["rule_macs"] for a, b in itertools.pairwise(rows)]
    assert len(steps) == 7
    assert all(1.6 < step < 2.7 for step in steps)  # α·β²·γ² ≈ 1.92, plus rounding


def test_custom_rule(cli):
    rows = _json(cli, "--alpha", "1.4", "--beta", "1.0", "--gamma", "1.0", "--phi", "2")["rows"]
    assert rows[0]["rule_width"] == 1.0 and rows[0]["rule_resolution"] == 224
    assert rows[0]["rule_depth"] == pytest.approx(1.96)


def test_lite_and_all_families(cli):
    lite = _json(cli, "--family", "lite")["rows"]
    assert [row["name"] for row in lite] == [f"efficientnet-lite{i}" for i in range(5)]
    assert lite[0]["params_trainable"] == 4_652_008  # the official Lite builder's test pins it
    every = _json(cli, "--family", "all", "--phi-max", "8")["rows"]
    assert "efficientnet-b8" in {row["name"] for row in every}


def test_csv_reads_back(cli):
    result = cli("scale-table", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 8 and int(rows[0]["params"]) == KERAS_COUNT_PARAMS["efficientnet-b0"]
    assert float(rows[3]["rule_width"]) == pytest.approx(1.1**3)


def test_markdown_has_header_and_separator(cli):
    lines = cli("scale-table", "--format", "markdown").stdout.splitlines()
    assert lines[0].startswith("| model | φ |") and lines[1].startswith("|---|")
    assert len([line for line in lines if line.startswith("| efficientnet-b")]) == 8


def test_table_footer_states_the_rule(cli):
    stdout = cli("scale-table").stdout
    assert "α·β²·γ² = 1.920" in stdout and "efficientnet-b7" in stdout


def test_scale_table_never_imports_tensorflow():
    from .test_cli import HEAVY, _modules_after  # here: test_cli reads this module's tables

    code = "from effnet_cli.cli.app import main\nmain(['scale-table', '--family', 'all', '--json'])"
    assert not HEAVY & _modules_after(code)


def test_plot_is_a_png(cli, tmp_path):
    from PIL import Image

    target = tmp_path / "scaling.png"
    result = cli("scale-table", "--family", "all", "--plot", target)
    assert result.code == 0, result.stderr
    assert target.stat().st_size > 10_000
    with Image.open(target) as image:
        assert image.format == "PNG" and image.size[0] > 500
    assert cli("scale-table", "--plot", target).code == 2  # exists: needs --force
    assert cli("scale-table", "--plot", target, "--force").code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["scaling.png"]
