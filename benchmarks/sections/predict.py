"""Predict, whole process: `effnet predict` on B0's ONNX beside a hand-written onnxruntime +
Pillow script doing the same steps."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from common import EFFNET, ENV, Options, TimeRow, markdown, wall_seconds

PREDICT_SCRIPT = """
import sys
from pathlib import Path
import numpy as np
import onnxruntime as ort
from PIL import Image

def prepare(path, size):
    image = Image.open(path).convert("RGB")
    width, height = image.size
    side = int(size / (size + 32) * min(width, height))
    left, top = (width - side + 1) // 2, (height - side + 1) // 2
    image = image.crop((left, top, left + side, top + side))
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
name, size = session.get_inputs()[0].name, session.get_inputs()[0].shape[1]
paths = sorted(Path(sys.argv[2]).iterdir())
batch = np.stack([prepare(p, size) for p in paths])
probs = np.concatenate([session.run(None, {name: batch[i : i + 16]})[0]
                        for i in range(0, len(batch), 16)])
for path, row in zip(paths, probs):
    print(path.name, *(f"{c}:{row[c]:.4f}" for c in np.argsort(-row)[:5]))
"""


def predict_rows(repeats: int) -> list[TimeRow]:
    """`effnet predict --from efficientnet-b0.onnx` on 1 and 64 photo-sized JPEGs, whole
    process, beside a hand-written onnxruntime + Pillow script doing the same steps."""
    import numpy as np
    from PIL import Image

    scratch = Path(tempfile.mkdtemp(prefix="effnet-predict-"))
    subprocess.run([*EFFNET, "export", "--phi", "0", "-f", "onnx", "--no-verify", "-o",
                    str(scratch)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=ENV)  # fmt: skip
    model = scratch / "efficientnet-b0.onnx"
    rng = np.random.default_rng(0)
    rows = []
    for count in (1, 64):
        folder = scratch / f"images{count}"
        folder.mkdir()
        for index in range(count):
            small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)  # smooth 640×480 photos
            image = Image.fromarray(small).resize((640, 480), Image.Resampling.BILINEAR)
            image.save(folder / f"photo{index:02d}.jpg", quality=90)
        ours = wall_seconds([*EFFNET, "predict", str(folder), "--from", str(model)], repeats)
        script = [sys.executable, "-c", PREDICT_SCRIPT, str(model), str(folder)]
        reference = wall_seconds(script, repeats)
        label = f"{count} image{'s' if count > 1 else ''}"
        rows.append(TimeRow(f"effnet predict --from efficientnet-b0.onnx, {label} (s)", ours,
                            f"onnxruntime + Pillow script, {label} (s)", reference))  # fmt: skip
    return rows


def report(options: Options) -> str:
    title = ("Predict, B0 224 ONNX, whole process (goals: within 1.2× of the script on 64 "
             "images, under 1 s for one)")  # fmt: skip
    return markdown(title, predict_rows(options.repeats))
