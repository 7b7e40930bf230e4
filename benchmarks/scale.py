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

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "effnet_cli" / "samples"
BIN = Path(sys.executable).parent
EFFNET = (
    [str(BIN / "effnet")] if (BIN / "effnet").exists() else [sys.executable, "-m", "effnet_cli"]
)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
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
LARGE_MIX = (((640, 1024), 0.50), ((1024, 1600), 0.30), ((1600, 2400), 0.12),
             ((3000, 4000), 0.08))  # fmt: skip
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
    return {"files": len(pool), "bytes": sum(sizes), "long_side_bands": counts,
            "long_min": min(longs), "long_median": statistics.median(longs),
            "long_max": max(longs), "mpx_median": statistics.median(pixels) / 1e6,
            "mpx_mean": statistics.mean(pixels) / 1e6,
            "kb_median": statistics.median(sizes) / 1e3}  # fmt: skip


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
    proc = subprocess.Popen(wrapped, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)  # fmt: skip
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
    out, err = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - started
    done.set()
    poller.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err[-1500:]}")
    gnu_kb = None
    for line in err.splitlines():
        if "Maximum resident set size" in line:
            gnu_kb = int(line.rsplit(":", 1)[1])
    return {"wall_s": wall, "stdout": out, "stderr": err,
            "gnu_peak_mb": gnu_kb / 1024 if gnu_kb else None,
            "tree_peak_mb": peak["tree"] / 2**20, "largest_peak_mb": peak["largest"] / 2**20}  # fmt: skip


def predict(model: Path, folder: Path, out: Path, *extra: str) -> dict:
    """One `effnet predict --json` process: wall, peak memory and its own `run` figures."""
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    argv = [*EFFNET, "-q", "predict", "--from", str(model), str(folder), "--output", str(out),
            "--json", *extra]  # fmt: skip
    result = run_measured(argv)
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
    argv = [*EFFNET, "bench", "--from", str(model), "--mode", "throughput", "--batch", str(batch),
            "--json"]  # fmt: skip
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
    return (joined.num_rows, pc.mean(same.cast("int8")).as_py(), pc.mean(delta).as_py(),
            pc.max(delta).as_py())  # fmt: skip


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
    return (f"{model}, {os.cpu_count()} CPUs, AVX-512: {'yes' if avx512 else 'no'}, "
            f"AMX: {'yes' if amx else 'no'}; load average at start "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)")  # fmt: skip
