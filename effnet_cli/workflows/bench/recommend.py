"""`--recommend`: per precision and mode, the fastest row fit to deploy, and the exact
`effnet export` command that writes its artifact."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from effnet_cli import backends
from effnet_cli.records.bench import (
    Agreement,
    BenchResult,
    NoRecommendation,
    Recommendation,
    Row,
)


def recommend(
    result: BenchResult, model_args: Sequence[str] | None, calibration: Path | None
) -> tuple[Recommendation | NoRecommendation, ...]:
    """The answers (`model_args` None: the benched file is the artifact): the fastest row fit
    to deploy. Never a row with an error, an emulated precision or drift that was not measured,
    nor one whose runtime × precision misses export's accuracy gate on real images (where the
    model has accuracy to keep: random weights are chosen on speed, and the answer says so)."""
    answers: list[Recommendation | NoRecommendation] = []
    loaded = result.throughput_rows or ()
    judged = {(a.runtime, a.precision): a for a in result.agreement or ()}
    for mode in result.settings.modes:
        rows: Sequence[Row] = result.rows if mode == "latency" else loaded
        for precision in dict.fromkeys(row.precision.split("-")[0] for row in rows):
            candidates = [r for r in rows if r.precision.split("-")[0] == precision]
            reasons = {id(r): unfit_reason(r, judged) for r in candidates}
            fit = [r for r in candidates if reasons[id(r)] is None]
            if not fit:
                none = "; ".join(sorted({str(reason) for reason in reasons.values()}))
                answers.append(NoRecommendation(precision=precision, mode=mode, none=none))
                continue
            best = max(fit, key=lambda row: row.images_per_s or 0.0)
            fastest = f"the fastest of {len(fit)} fit rows" if len(fit) > 1 else "the one fit row"
            why = f"{fastest}; " + agreement_text(judged.get((best.runtime, best.precision)))
            answers.append(deploy_answer(best, mode, model_args, calibration, result, why))
    return tuple(answers)


def unfit_reason(row: Row, judged: dict[tuple[str, str], Agreement]) -> str | None:
    """Why a row may not be recommended, or None. Agreement is the artifact's, judged once on
    the real images, not the row's."""
    if row.error:
        return f"{row.runtime}: {row.error}"
    if row.precision.endswith("-emulated"):
        return f"{row.runtime} runs {row.precision}"
    if row.drift_max_rel is None:
        return f"{row.runtime}: {row.drift or 'drift unmeasured'}"
    agreement = judged.get((row.runtime, row.precision))
    if agreement is not None and agreement.passed is False:
        return f"{row.runtime} {row.precision}: {agreement_text(agreement)}"
    return None


def agreement_text(agreement: Agreement | None) -> str:
    """'top-1 88 %, top-5 95 %, 16.1 dB against fp32 Keras on 8 real images (the shipped
    photos), at export's gate', or why accuracy was not judged."""
    if agreement is None:
        return "accuracy not measured"
    if agreement.top1_agreement is None and agreement.passed is False:
        return "outputs not finite on the real images"
    if agreement.not_judged:
        return f"accuracy not judged ({agreement.not_judged}): chosen on speed and drift"
    gate = backends.QUANTIZED_GATE
    sqnr = "equal logits" if agreement.sqnr_db is None else f"{agreement.sqnr_db:.1f} dB"
    verdict = "at" if agreement.passed else "under"
    return (
        f"top-1 {agreement.top1_agreement:.0%}, top-5 {agreement.top5_overlap:.0%}, {sqnr} "
        f"against fp32 Keras on {agreement.images} real images ({agreement.judged_on}), "
        f"{verdict} export's gate ({gate.min_top1_agreement:.0%}, "
        f"{gate.min_top5_overlap:.0%}, {gate.min_sqnr_db:g} dB)"
    )


def deploy_answer(
    row: Row,
    mode: str,
    model_args: Sequence[str] | None,
    calibration: Path | None,
    result: BenchResult,
    why: str,
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
        precision=row.precision,
        mode=mode,
        runtime=row.runtime,
        batch=row.batch,
        images_per_s=row.images_per_s,
        drift_max_rel=row.drift_max_rel,
        top1_agreement=row.top1_agreement,
        settings=settings,
        how=way.how,
        file_precision=file_precision,
        artifact=f"deploy/{backend.artifact_name(name, file_precision)}"
        if model_args is not None
        else benched,
        command=shlex.join(command) if model_args is not None else None,
        why=why,
    )
