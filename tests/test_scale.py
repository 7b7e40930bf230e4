"""predict and evaluate over many images (issue 31, docs/scale.md): bad files become rows, a run
killed with SIGKILL resumes with every image exactly once, the output's record refuses another
artifact, and a real embedded Ray instance gives the local engine's rows.

The rows are read back with pyarrow and the csv/json modules, not with effnet's own readers.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from effnet_cli import samples

GOOD = 1000
BAD = ("corrupt.jpg", "truncated.jpg", "empty.jpg", "notes.png", "bomb.png")


def _photos() -> list:
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in samples.paths()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """1,000 small JPEGs cut from the shipped photos (each a different crop and size) and five
    bad files: random bytes, a truncated JPEG, an empty file, text named .png, and a 1-bit PNG
    of 200 million pixels (a few KB on disk: a decompression bomb)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("many")
    photos = _photos()
    for n in range(GOOD):
        photo = photos[n % len(photos)]
        left, top = (n * 7) % 60, (n * 11) % 40
        crop = photo.crop((left, top, photo.width - left, photo.height - top))
        crop.resize((72 + n % 40, 64 + n % 30)).save(root / f"img{n:04d}.jpg", quality=80)
    whole = (root / "img0000.jpg").read_bytes()
    (root / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("not a picture\n")
    Image.new("1", (20000, 10000)).save(root / "bomb.png")
    return root


def _parquet_rows(path: Path) -> dict[str, dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)  # pyarrow reads the folder of parts as one table
    rows = table.to_pylist()
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)), "an image was written twice"
    return {Path(row["path"]).name: row for row in rows}


def test_a_thousand_good_images_and_five_bad_ones_give_a_row_each(cli, b0_r64, folder, tmp_path):
    output = tmp_path / "rows.parquet"
    result = cli("predict", "--from", b0_r64.path("onnx"), folder, "-o", output, "--top", "2",
                 "--json")  # fmt: skip
    assert result.code == 4, result.stderr  # finished, some images failed: not 0, not 2
    rows = _parquet_rows(output)
    assert len(rows) == GOOD + len(BAD)
    good = [row for name, row in rows.items() if name not in BAD]
    assert all(row["error"] is None and 0 <= row["class_1"] < 1000 for row in good)
    assert all(row["probability_1"] >= row["probability_2"] > 0 for row in good)
    why = {name: rows[name]["error"] for name in BAD}
    assert all(why.values()) and all(rows[name]["class_1"] is None for name in BAD)
    assert why["empty.jpg"] == "empty (0 bytes)"
    assert "truncated" in why["truncated.jpg"] and "too large" in why["bomb.png"]
    assert "not an image Pillow can read" in why["notes.png"]
    run = json.loads(result.stdout)["run"]
    assert (run["classified"], run["failed"], run["images"]) == (GOOD, len(BAD), GOOD + len(BAD))
    assert json.loads(result.stdout)["images"] == []  # the rows are in the file, not on stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{GOOD} classified, {len(BAD)} failed; first: ")
    assert Path(last.split("first: ")[1].split(": ")[0]).name in BAD


def test_every_input_form_names_the_same_images(cli, b0_r64, folder, tmp_path):
    """A folder, a pattern, and .txt, .csv and .parquet lists (paths relative to the list):
    the same rows; --recursive finds images in subfolders."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = sorted(p.name for p in folder.glob("img000*.jpg"))
    lists = tmp_path / "lists"
    lists.mkdir()
    relative = [os.path.relpath(folder / n, lists) for n in names]
    (lists / "l.txt").write_text("# ten images\n" + "\n".join(relative) + "\n")
    (lists / "l.csv").write_text("path,note\n" + "".join(f"{r},x\n" for r in relative))
    pq.write_table(pa.table({"path": relative}), lists / "l.parquet")
    nested = tmp_path / "nested" / "deeper"
    nested.mkdir(parents=True)
    for n in names:
        (nested / n).write_bytes((folder / n).read_bytes())
    forms = {
        "pattern": [str(folder / "img000*.jpg")],
        "txt": ["--inputs", lists / "l.txt"],
        "csv": ["--inputs", lists / "l.csv"],
        "parquet": ["--inputs", lists / "l.parquet"],
        "recursive": ["--recursive", tmp_path / "nested"],
    }
    seen = {}
    for form, argv in forms.items():
        out = tmp_path / f"{form}.jsonl"
        result = cli("predict", "--from", b0_r64.path("onnx"), *argv, "-o", out)
        assert result.code == 0, (form, result.stderr)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        seen[form] = sorted((Path(r["path"]).name, r["class_1"]) for r in rows)
    assert len(seen["txt"]) == len(names) == 10
    assert all(value == seen["txt"] for value in seen.values()), seen
    bare = cli("predict", "--from", b0_r64.path("onnx"), tmp_path / "nested")
    assert bare.code == 2 and "hint: --recursive descends into its subfolders" in bare.stderr


def _csv_paths(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return [row["path"] for row in csv.DictReader(f)]


def test_a_run_killed_with_sigkill_resumes_with_every_image_exactly_once(b0_r64, folder, tmp_path):
    """SIGKILL part way (no handler runs), a half-written row appended as a cut write leaves
    one, then --resume: every image once, the resumed rows equal to a run never interrupted."""
    output = tmp_path / "rows.csv"
    command = [sys.executable, "-m", "effnet_cli", "-q", "predict", "--from",
               str(b0_r64.path("onnx")), str(folder)]  # fmt: skip
    argv = [*command, "-o", str(output), "--batch", "2", "--workers", "1", "--threads", "1"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if output.exists() and output.read_bytes().count(b"\n") > 50:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _csv_paths(output)
    assert 50 <= len(before) < GOOD
    with output.open("a") as f:
        f.write(str(folder / "img0999.jpg") + ",,12")  # a row cut mid-write: no newline
    # resumed at full speed: the batch, workers and threads are not part of what produced the rows
    resumed = subprocess.run(
        [*command, "-o", str(output), "--resume"], capture_output=True, text=True
    )
    assert resumed.returncode == 4, resumed.stderr  # the five bad files
    assert "half-written row" in resumed.stderr
    assert f"{len(before)} of {GOOD + len(BAD)} images already in" in resumed.stderr
    after = _csv_paths(output)
    assert sorted(after) == sorted(str(p) for p in folder.iterdir())  # each exactly once
    assert after[: len(before)] == before  # the earlier rows kept as they were
    whole = tmp_path / "whole.csv"
    subprocess.run([*command, "-o", str(whole)], capture_output=True, check=False)
    with output.open(newline="") as a, whole.open(newline="") as b:
        assert sorted(map(tuple, csv.reader(a))) == sorted(map(tuple, csv.reader(b)))


def test_half_written_parquet_parts_are_dropped_and_redone(
    cli, b0_r64, folder, tmp_path, monkeypatch
):
    """Parts of 100 rows; a killed writer's leftovers (a temporary part, a part without its
    footer) are removed on --resume and their images classified again, each once."""
    from effnet_cli.workflows import rowfiles

    monkeypatch.setattr(rowfiles, "PART_ROWS", 100)
    output = tmp_path / "rows.parquet"
    first = cli("predict", "--from", b0_r64.path("onnx"), folder, "-o", output)
    assert first.code == 4, first.stderr
    parts = sorted(output.glob("part-*.parquet"))
    assert len(parts) == -(-(GOOD + len(BAD)) // 112)  # parts close at the first batch past 100
    parts[-1].unlink()
    parts[-2].write_bytes(parts[-2].read_bytes()[:-200])  # no footer: unreadable
    (output / f".{parts[-3].name}.tmp").write_bytes(b"PAR1")
    resumed = cli("predict", "--from", b0_r64.path("onnx"), folder, "-o", output, "--resume")
    assert resumed.code == 4, resumed.stderr
    assert "2 half-written part file(s)" in resumed.stderr
    assert not list(output.glob(".*.tmp"))
    assert len(_parquet_rows(output)) == GOOD + len(BAD)


def test_a_jsonl_output_resumes_past_its_cut_last_line(cli, b0_r64, folder, tmp_path):
    output = tmp_path / "rows.jsonl"
    few = [folder / f"img000{n}.jpg" for n in range(6)]
    assert cli("predict", "--from", b0_r64.path("onnx"), *few[:4], "-o", output).code == 0
    with output.open("a") as f:
        f.write('{"path": "' + str(few[4]) + '", "err')  # the write a kill cut short
    resumed = cli("predict", "--from", b0_r64.path("onnx"), *few, "-o", output, "--resume")
    assert resumed.code == 0, resumed.stderr
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(row["path"] for row in rows) == sorted(map(str, few))
    assert "a half-written row" in resumed.stderr and "4 of 6 images already in" in resumed.stderr


def test_resuming_with_another_artifact_or_preparation_is_refused(cli, b0_r64, folder, tmp_path):
    output = tmp_path / "rows.csv"
    few = [folder / f"img000{n}.jpg" for n in range(3)]
    assert cli("predict", "--from", b0_r64.path("onnx"), *few, "-o", output).code == 0
    written = output.read_bytes()
    other = cli("predict", "--from", b0_r64.path("tflite"), *few, "-o", output, "--resume")
    assert other.code == 2
    assert "was produced differently; the artifact: written by" in other.stderr
    assert "efficientnet-b0-r64.tflite" in other.stderr.splitlines()[0]
    plain = cli("predict", "--from", b0_r64.path("onnx"), *few, "-o", output, "--resume",
                "--resize", "plain")  # fmt: skip
    assert plain.code == 2 and "--resize: 'crop' then, 'plain' now" in plain.stderr
    top = cli(
        "predict", "--from", b0_r64.path("onnx"), *few, "-o", output, "--resume", "--top", "3"
    )
    assert top.code == 2 and "--top: 5 then, 3 now" in top.stderr
    names = tmp_path / "names.txt"
    names.write_text("".join(f"class {n}\n" for n in range(1000)))
    renamed = cli("predict", "--from", b0_r64.path("onnx"), *few, "-o", output, "--resume",
                  "--labels", names)  # fmt: skip
    assert renamed.code == 2 and "--labels: " in renamed.stderr
    assert output.read_bytes() == written  # nothing added by a refused run
    again = cli("predict", "--from", b0_r64.path("onnx"), *few, "-o", output)
    assert again.code == 2 and "hint: --resume continues it, --force replaces it" in again.stderr


def test_draft_decoding_is_close_to_the_full_decode_on_a_large_photo(tmp_path):
    """Pillow's draft mode decodes a 2400-px JPEG at a reduced scale: the prepared pixels stay
    close to the full decode's, and it is recorded, so that --resume never mixes the two."""
    from effnet_cli.workflows import stream

    photo = _photos()[1].resize((2400, 1800))
    path = tmp_path / "big.jpg"
    photo.save(path, quality=90)
    full = stream.prepare(str(path), (224,), "crop").pixels[224]
    draft = stream.prepare(str(path), (224,), "crop", draft=True).pixels[224]
    difference = np.abs(full - draft)
    assert 0 < difference.mean() < 3 and full.shape == draft.shape


# ---------------------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_instance():
    """A real embedded Ray (2 CPUs, no dashboard), once for this module; effnet uses an
    instance its process already holds and leaves it running."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024**2,
             log_to_driver=False)  # fmt: skip
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """24 real photos: the shipped ones, mirrored and recropped."""
    from PIL import ImageOps

    root = tmp_path_factory.mktemp("photos")
    for path, photo in zip(samples.paths(), _photos(), strict=True):
        photo.save(root / path.name, quality=92)
        ImageOps.mirror(photo).save(root / f"mirror-{path.name}", quality=92)
        w, h = photo.size
        photo.crop((w // 8, h // 8, w - w // 8, h - h // 8)).save(root / f"crop-{path.name}")
    return root


def test_ray_gives_the_local_engines_classes_and_probabilities(
    cli, ray_instance, lite0_onnx, photos, tmp_path
):
    """The trained Lite0 on real photos: the same rows on Ray's actors as in this process."""
    local, on_ray = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    assert cli("predict", "--from", lite0_onnx, photos, "-o", local).code == 0
    result = cli("predict", "--from", lite0_onnx, photos, "-o", on_ray, "--engine", "ray",
                 "--workers", "2", "--batch", "5", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    run = json.loads(result.stdout)["run"]
    assert run["engine"] == "ray" and run["workers"] == 2 and run["classified"] == 24
    a, b = _parquet_rows(local), _parquet_rows(on_ray)
    assert a.keys() == b.keys() and len(a) == 24
    for name in a:
        assert [a[name][f"class_{r}"] for r in range(1, 6)] == [
            b[name][f"class_{r}"] for r in range(1, 6)
        ]
        for r in range(1, 6):
            assert abs(a[name][f"probability_{r}"] - b[name][f"probability_{r}"]) <= 1e-6
    assert a["espresso.jpg"]["label_1"] == "espresso"  # a trained model, a real photo


def test_ray_evaluate_sums_the_workers_counts_as_the_local_engine_does(
    cli, ray_instance, lite0_onnx, tmp_path
):
    truth = Path(samples.folder()) / "truth.csv"
    listed = tmp_path / "labelled.csv"
    rows = list(csv.reader(truth.open()))[1:]
    lines = [f"{samples.folder() / name},{cls}\n" for name, cls in rows]
    listed.write_text("path,class\n" + "".join(lines) + f"{tmp_path / 'missing.jpg'},3\n")
    documents = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.parquet"
        argv = ["--from", lite0_onnx, "--compare", lite0_onnx, "--inputs", listed]
        argv += ["--engine", engine, "--workers", "2", "--batch", "2", "-o", out, "--json"]
        result = cli("evaluate", *argv)
        assert result.code == 4, result.stderr  # the missing file is a row with an error
        documents[engine] = json.loads(result.stdout)
    local, ray = documents["local"], documents["ray"]
    keys = ("images", "top1_correct", "top5_correct")
    assert [[r[k] for k in keys] for r in local["rows"]] == [
        [r[k] for k in keys] for r in ray["rows"]
    ]
    assert local["rows"][0]["images"] == len(rows) and local["rows"][0]["top1_correct"] > 0
    assert ray["run"]["failed"] == local["run"]["failed"] == 1
    assert ray["run"]["first_error"]["error"] == "missing (no such file)"


def test_without_ray_installed_engine_ray_is_one_line_naming_the_fix(
    cli, b0_r64, folder, monkeypatch
):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = cli("predict", "--from", b0_r64.path("onnx"), folder, "--engine", "ray",
                 "-o", folder.parent / "r.parquet")  # fmt: skip
    assert result.code == 2
    assert result.stderr.splitlines() == [
        "error: --engine ray needs Ray, which is not installed",
        "hint: pip install 'effnet-cli[ray]' (or pip install 'ray[data]')",
    ]
