"""`--recommend`: per precision and mode, the fastest row fit to deploy, and the exact
`effnet export` command that writes its artifact."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from effnet_cli import backends
from effnet_cli.workflows.bench.records import (
    BenchResult,
    NoRecommendation,
    Recommendation,
    Row,
)

# --recommend never names a row whose top-1 agreement with fp32 Keras, on the images it was
# benched on, is under this. Those are bench's seeded random images: export's accuracy gate on
# real photos does not reach bench yet (issue #21 item 8), so a trained int8 row can be passed over.
RECOMMEND_MIN_AGREEMENT = 0.9


def recommend(
    result: BenchResult, model_args: Sequence[str] | None, calibration: Path | None
) -> tuple[Recommendation | NoRecommendation, ...]:
    """The answers (`model_args` None: the benched file is the artifact). Never a row with an
    error, an emulated precision, drift that was not measured, or top-1 agreement under
    RECOMMEND_MIN_AGREEMENT."""
    answers: list[Recommendation | NoRecommendation] = []
    loaded = result.throughput_rows or ()
    every: tuple[Row, ...] = (*result.rows, *loaded)
    for mode in result.settings.modes:
        rows: Sequence[Row] = result.rows if mode == "latency" else loaded
        for precision in dict.fromkeys(row.precision.split("-")[0] for row in rows):
            candidates = [r for r in rows if r.precision.split("-")[0] == precision]
            fit = [r for r in candidates if unfit_reason(r, every) is None]
            if not fit:
                reasons = sorted({str(unfit_reason(r, every)) for r in candidates})
                answers.append(NoRecommendation(precision=precision, mode=mode,
                                                none="; ".join(reasons)))  # fmt: skip
                continue
            best = max(fit, key=lambda row: row.images_per_s or 0.0)
            answers.append(deploy_answer(best, mode, model_args, calibration, result))
    return tuple(answers)


def unfit_reason(row: Row, every: Sequence[Row]) -> str | None:
    """Why a row may not be recommended, or None. Agreement is the artifact's, not the row's:
    the lowest over all its rows (a batch of one image agrees 100 % or 0 %)."""
    if row.error:
        return f"{row.runtime}: {row.error}"
    if row.precision.endswith("-emulated"):
        return f"{row.runtime} runs {row.precision}"
    same = [
        r.top1_agreement
        for r in every
        if (r.runtime, r.precision) == (row.runtime, row.precision) and not r.error
    ]
    if row.top1_agreement is None or None in same:
        return f"{row.runtime}: drift unmeasured"
    lowest = min(a for a in same if a is not None)
    if lowest < RECOMMEND_MIN_AGREEMENT:
        return (f"{row.runtime} {row.precision}: top-1 agreement {lowest:.0%} under "
                f"{RECOMMEND_MIN_AGREEMENT:.0%}")  # fmt: skip
    return None


def deploy_answer(
    row: Row,
    mode: str,
    model_args: Sequence[str] | None,
    calibration: Path | None,
    result: BenchResult,
) -> Recommendation:
    """The row, its artifact and the command that writes it. A hint (OpenVINO bf16/fp16) or a
    dtype policy (Keras bf16) runs the fp32 file: the settings say how to run it."""
    import shlex

    backend = backends.get(row.runtime)
    way = backend.precisions[row.precision]
    file_precision = row.precision if way.how == "file" else "fp32"
    command = ["effnet", "export", *(model_args or []), "-f", row.runtime]
    if row.batch_pinned:  # timed on the artifact compiled for its batch: deploy that
        command += ["--batch", str(row.batch)]
    if file_precision != "fp32":
        command += ["--quantize", file_precision]
    if way.calibration and calibration is not None:
        command += ["--calibration", str(calibration)]
    command += ["-o", "deploy"]
    name, benched = result.model["name"], result.model.get("artifact")
    settings = row.settings or ""
    if way.applied:  # a hint or a policy: how the fp32 file is run
        settings = f"{settings}; {way.applied}"
    assert row.images_per_s is not None  # a fit row was timed
    return Recommendation(
        precision=row.precision, mode=mode, runtime=row.runtime, batch=row.batch,
        images_per_s=row.images_per_s, drift_max_rel=row.drift_max_rel,
        top1_agreement=row.top1_agreement, settings=settings, how=way.how,
        file_precision=file_precision,
        artifact=f"deploy/{backend.artifact_name(name, file_precision)}"
        if model_args is not None else benched,
        command=shlex.join(command) if model_args is not None else None,
    )  # fmt: skip
