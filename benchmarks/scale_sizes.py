"""Peak memory and speed of `effnet predict` against the number of images alone: the scale
section's pool, image sets, model and command (benchmarks/scale.py), without its other parts.

    python benchmarks/scale_sizes.py [SCRATCH]     # ~6 min on 2 cores; JSON lines on stdout

Runs 1,000, 1,000, 4,000, 16,000 and 1,000 images in that order (the 1,000-image run three times,
to see its spread), under GNU time, with `--output X.parquet`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale

ORDER = (1000, 1000, 4000, 16000, 1000)


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="effnet-"))
    pool = scale.make_pool(root / "pool", 360, scale.LARGE_MIX, seed=1)
    sets = {n: scale.link_set(pool, root / f"large-{n}", n, seed=n) for n in sorted(set(ORDER))}
    model = scale._export_models(root / "models")["fp32 ONNX"]
    print(json.dumps({"machine": scale.machine_line()}), flush=True)
    for n in ORDER:
        run = scale.predict(model, sets[n], root / "out.parquet")
        keep = ("wall_s", "gnu_peak_mb", "tree_peak_mb", "images_per_s")
        print(json.dumps({"images": n, **{k: run[k] for k in keep}}), flush=True)


if __name__ == "__main__":
    main()
