"""Building B7: effnet's builder beside keras.applications'."""

from __future__ import annotations

import sys

from common import EFFNET, Options, TimeRow, interleaved, markdown, wall_seconds


def build_rows(repeats: int) -> list[TimeRow]:
    """effnet's builder beside keras.applications' for B7, in one process, interleaved."""
    from effnet_cli import build_model
    from effnet_cli.keras.builder import import_keras

    keras = import_keras()  # TensorFlow's start-up noise silenced, as in effnet itself

    def ours() -> None:
        keras.backend.clear_session()
        build_model("b7")

    def reference() -> None:
        keras.backend.clear_session()
        keras.applications.EfficientNetB7(weights=None)

    ours(), reference()  # warm both code paths
    median = interleaved({"ours": ours, "reference": reference}, repeats)
    cli = wall_seconds([*EFFNET, "build", "--phi", "7"], max(1, repeats // 2))
    reference_cli = wall_seconds(
        [sys.executable, "-c", "import keras; keras.applications.EfficientNetB7(weights=None)"],
        max(1, repeats // 2),
    )
    return [
        TimeRow("build_model('b7') in-process", median["ours"],
                "keras.applications.EfficientNetB7", median["reference"]),
        TimeRow("effnet build --phi 7 (whole process)", cli,
                "python -c 'keras.applications.EfficientNetB7()'", reference_cli),
    ]  # fmt: skip


def report(options: Options) -> str:
    return markdown("Building B7 (goal: within 1.1× of keras.applications)",
                    build_rows(options.repeats))  # fmt: skip
