"""Export, whole process: effnet's verified export beside the converters called directly, in
time and peak memory."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import EFFNET, ENV, MemoryRow, Options, Timed, TimeRow, markdown, timed

DIRECT_EXPORT = """
import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import tensorflow as tf, keras
m = getattr(keras.applications, 'EfficientNetB{phi}')(weights=None)
if '{fmt}' == 'onnx':
    import tf2onnx
    h, w = m.input.shape[1:3]
    spec = (tf.TensorSpec((None, h, w, 3), tf.float32, name='input'),)
    tf2onnx.convert.from_keras(m, input_signature=spec, opset=17, output_path='{out}.onnx')
else:
    open('{out}.tflite', 'wb').write(tf.lite.TFLiteConverter.from_keras_model(m).convert())
"""


def _median(runs: list[Timed]) -> Timed:
    return Timed(
        wall_s=statistics.median(run.wall_s for run in runs),
        peak_rss_gb=statistics.median(run.peak_rss_gb for run in runs),
    )


def export_rows(phis: list[int], repeats: int = 3) -> list[TimeRow | MemoryRow]:
    """Whole-process export time and peak RSS, effnet beside the converters called directly:
    the median of `repeats` interleaved runs of each (B7: one, minutes each)."""
    rows: list[TimeRow | MemoryRow] = []
    for phi in phis:
        for fmt in ("onnx", "tflite"):
            scratch = Path(tempfile.mkdtemp(prefix="effnet-export-"))
            export = [*EFFNET, "export", "--phi", str(phi), "-f", fmt, "--force", "-o"]
            script = DIRECT_EXPORT.format(phi=phi, fmt=fmt, out=scratch / "direct")
            runs: dict[str, list[Timed]] = {}
            for _ in range(1 if phi >= 7 else repeats):
                for name, argv in (
                    ("ours", [*export, str(scratch)]),
                    ("quick", [*export, str(scratch / "unverified"), "--no-verify"]),
                    ("direct", [sys.executable, "-c", script]),
                ):
                    runs.setdefault(name, []).append(timed(argv))
            ours, quick, direct = (_median(runs[n]) for n in ("ours", "quick", "direct"))
            label = f"direct {fmt} converter on keras.applications B{phi} (s)"
            rows.append(
                TimeRow(
                    effnet=f"effnet export --phi {phi} -f {fmt} (s, verified)",
                    effnet_s=ours.wall_s,
                    reference=label,
                    reference_s=direct.wall_s,
                )
            )
            rows.append(
                MemoryRow(
                    effnet="  peak RSS (GB)",
                    effnet_gb=ours.peak_rss_gb,
                    reference="  peak RSS (GB)",
                    reference_gb=direct.peak_rss_gb,
                )
            )
            rows.append(
                TimeRow(
                    effnet="  the same with --no-verify (s)",
                    effnet_s=quick.wall_s,
                    reference="  (direct, s)",
                    reference_s=direct.wall_s,
                )
            )
            if fmt == "onnx":
                rows.append(_trained_statistics_row(phi, scratch, direct.wall_s))
    return rows


def _trained_statistics_row(phi: int, scratch: Path, direct_s: float) -> TimeRow:
    """A verified export of a .keras whose BatchNorm statistics are real (export's own .keras
    of the calibrated model): what a user with trained weights waits, no calibration pass."""
    keras_dir = scratch / "keras"
    subprocess.run([*EFFNET, "export", "--phi", str(phi), "-f", "keras", "-o", str(keras_dir)],
                   check=True, capture_output=True, env=ENV)  # fmt: skip
    (source,) = keras_dir.glob("*.keras")
    trained = timed([*EFFNET, "export", "--from", str(source), "-f", "onnx", "-o",
                     str(scratch / "trained")])  # fmt: skip
    return TimeRow(
        effnet="  --from a .keras with trained statistics (s, verified)",
        effnet_s=trained.wall_s,
        reference="  (direct, s)",
        reference_s=direct_s,
    )


def report(options: Options) -> str:
    phis = [0, 7] if options.b7_export else [0]
    title = "Export, whole process (goals: verified B0 within 1.2× of the direct call; B7 → "
    return markdown(title + "ONNX under 8 GB)", export_rows(phis))
