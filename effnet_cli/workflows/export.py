"""`effnet export`: write each (backend, precision) artifact from one model and verify it.

One built model serves every format. Each artifact is written by its backend's writer to a
temporary path beside its target, loaded by its own runtime, run on the same inputs as the Keras
model, and only renamed into place when it passes its gate. What a format is, is its backend's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from effnet_cli import backends
from effnet_cli.backends import runtimes
from effnet_cli.backends.artifact import metadata
from effnet_cli.backends.record import Steer
from effnet_cli.keras.calibration import check_calibration_array, load_calibration
from effnet_cli.model import spec as S
from effnet_cli.records.export import (
    Accuracy,
    Artifact,
    Calibration,
    Int8Recipe,
    RecipeAttempt,
    RecipeFigures,
    Verification,
    taken,
)
from effnet_cli.records.model import ModelIdentity
from effnet_cli.util import files
from effnet_cli.util.drift import NonFinite, agreement_on, compare, non_finite
from effnet_cli.util.errors import UsageError, WorkError, choices, split_list
from effnet_cli.workflows.accuracy import RealImages, keras_answers, real_images

# `--dynamic-size` is verified at the resolution and this much above it: 32 keeps the parity of
# the feature map at each of EfficientNet's five stride-2 layers, so a family that pads
# explicitly for its build resolution is right there too (builder.with_input_size).
SECOND_SIZE_STEP = 32


@dataclass(frozen=True)
class Target:
    backend: str
    precision: str  # converted into the file: fp32, or a --quantize mode
    path: Path


def parse_formats(values: list[str]) -> list[str]:
    """`--format onnx,tflite --format keras` -> ['onnx', 'tflite', 'keras'] (validated)."""
    valid = backends.formats()
    formats: list[str] = []
    for value in values:
        for part in (p.lower() for p in split_list("--format", value)):
            if part not in valid:
                raise UsageError(f"unknown --format {part!r}; valid: {choices(valid)}")
            if part not in formats:
                formats.append(part)
    if not formats:
        raise UsageError(f"give at least one --format: {choices(valid)}")
    return formats


def plan_targets(
    name: str, formats: Sequence[str], directory: Path, precision: str
) -> list[Target]:
    """File names say the model, precision and format: efficientnet-b0-fp16.tflite."""
    return [
        Target(fmt, precision, directory / backends.get(fmt).artifact_name(name, precision))
        for fmt in formats
    ]


def gate(target: Target) -> backends.Gate:
    way = backends.get(target.backend).precisions[target.precision]
    assert way.gate is not None, "file precisions carry a gate"  # checked by check_request
    return way.gate


# ---------------------------------------------------------------------------- verification


Case = tuple[int, int]  # (batch, size): a batch of size × size images


def verify(
    target: Target,
    path: Path,
    inputs: dict[Case, Any],
    expected: dict[Case, Any],
    compared: str,
    real: RealImages | None = None,
) -> Verification:
    """Run the artifact with its own runtime on the inputs the Keras model already answered:
    drift on seeded random images, and agreement on real images (`real`).

    `expected` holds the Keras model's logits when it ends in a softmax (`compared`): a softmax
    saturates on random-weight models, and probabilities of 0 and 1 hide any difference.
    Inputs are NHWC whatever the artifact's layout: its runner feeds an NCHW file.
    """
    runner = backends.load_runner(target.backend, path, precision=target.precision)
    if runner.compared != compared:
        raise WorkError(f"cannot read the {compared} of {path.name} to verify it")
    fixed = runner.fixed_batch  # a pinned batch runs a case of several batches in chunks
    cases = [case for case in inputs if fixed is None or case[0] % fixed == 0]
    batches, sizes = (tuple(dict.fromkeys(case[i] for case in cases)) for i in (0, 1))
    images = sum(batch for batch, _ in cases)
    limits = gate(target)
    try:
        worst, agreeing = 0.0, 0.0
        for case in cases:
            rel, agreement = compare(runner.comparable_all(inputs[case]), expected[case])
            worst = max(worst, rel)
            agreeing += agreement * case[0]
        accuracy = judge_accuracy(limits, runner, real) if real is not None else None
    except NonFinite as exc:  # the file answers NaN or infinities: failed, never a figure
        return Verification(
            batches=batches,
            sizes=sizes,
            compared=compared,
            max_rel_diff=None,
            top1_agreement=None,
            tolerance=limits.max_rel_diff,
            passed=False,
            drift_images=images,
            non_finite=str(exc),
        )
    passed = (limits.max_rel_diff is None or worst <= limits.max_rel_diff) and (
        accuracy is None or accuracy.passed is not False
    )
    return Verification(
        batches=batches,
        sizes=sizes,
        compared=compared,
        max_rel_diff=worst,
        top1_agreement=agreeing / images,
        tolerance=limits.max_rel_diff,
        passed=passed,
        drift_images=images,
        accuracy=accuracy,
    )


def judge_accuracy(
    limits: backends.Gate, runner: runtimes.Runner, real: RealImages
) -> Accuracy | None:
    """The artifact against Keras on the real images: judged where its gate judges accuracy
    and the model has some to keep; reported otherwise (None: nothing to say)."""
    why = real.not_judged if limits.judges_accuracy else None
    if real.inputs is None:
        return Accuracy(judged_on=real.judged_on, not_judged=why) if why else None
    figures = agreement_on(runner.comparable_all(real.inputs), real.expected)
    accuracy = Accuracy(
        judged_on=real.judged_on,
        images=len(real.inputs),
        top1_agreement=figures["top1_agreement"],
        top5_overlap=figures["top_k_overlap"],
        sqnr_db=figures["sqnr_db"],
        not_judged=why,
    )
    if not limits.judges_accuracy or why:
        return accuracy
    return replace(
        accuracy,
        min_top1_agreement=limits.min_top1_agreement,
        min_top5_overlap=limits.min_top5_overlap,
        min_sqnr_db=limits.min_sqnr_db,
        passed=limits.reached(
            figures["top1_agreement"], figures["top_k_overlap"], figures["sqnr_db"]
        ),
    )


@dataclass(frozen=True, kw_only=True)
class ExportRequest:
    """What `effnet export` is asked for, built by keyword (nothing here is positional)."""

    formats: tuple[str, ...]
    directory: Path
    opset: int = backends.DEFAULT_OPSET
    batch: int | None = None
    quantize: str = "none"
    calibration: Path | None = None
    optimize: bool = True  # onnxslim on the ONNX graph (and the OpenVINO IR made from it)
    verify: bool = True
    keep_failed: bool = False
    force: bool = False
    seed: int = 0
    nchw: bool = False  # inputs [N, 3, H, W] (tf2onnx's inputs_as_nchw)
    dynamic_size: bool = False  # height and width None in the input signature
    allow_odd_padding: bool = False  # confirms --dynamic-size for a family that pads explicitly
    verify_images: tuple[Path, ...] | None = None  # real images to compare each artifact on
    int8_recipe: str | None = None  # one int8 recipe, no other tried; None: each in turn


def check_request(
    request: ExportRequest, name: str, resolution: int | None, explicit_padding: bool = False
) -> list[Target]:
    """Every check that needs no TensorFlow, before anything is built or written (`resolution`:
    the model's, where known before loading it; `explicit_padding`: whether the model pads its
    stride-2 convolutions explicitly, as keras.applications' V1 does)."""
    precision = check_quantize(request)
    check_recipe(request)
    check_layout(request, name, resolution, explicit_padding)
    if request.calibration is not None:
        if not request.calibration.exists():
            raise UsageError(f"calibration data {str(request.calibration)!r} does not exist")
        if request.calibration.suffix == ".npy":
            check_calibration_array(request.calibration, resolution)
        elif not request.calibration.is_dir():
            raise UsageError(
                f"--calibration takes a folder of images or a .npy file, not {request.calibration}"
            )
    if not 7 <= request.opset <= 21:
        raise UsageError(f"--opset must lie between 7 and 21, not {request.opset}")
    if request.batch is not None and not 1 <= request.batch <= 4096:
        raise UsageError(f"--batch must lie between 1 and 4096, not {request.batch}")
    directory = request.directory
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is a file; -o takes a directory")
    # the folder export writes in, or the one it creates it in: writable before any model is built
    files.check_writable_dir(directory if directory.is_dir() else directory.parent)
    targets = plan_targets(name, request.formats, directory, precision)
    for target in targets:
        if target.path.exists() and not request.force:
            raise UsageError(f"{target.path} already exists", hint="pass --force to replace it")
    return targets


def pads_explicitly(spec: S.ModelSpec | None, source: Path | None) -> bool:
    """Whether the model pads its stride-2 convolutions explicitly (V1's correct_pad): from the
    family, or from a `.keras` file's config without loading it."""
    if spec is not None:
        return spec.family.padding == "explicit"
    from effnet_cli.keras.archive import keras_file_pads_explicitly

    return source is not None and keras_file_pads_explicitly(source)


def check_layout(
    request: ExportRequest, name: str, resolution: int | None, explicit_padding: bool
) -> None:
    """`--nchw`, `--dynamic-size` and its confirmation `--allow-odd-padding`."""
    for wanted, option, offering in (
        (request.nchw, "--nchw", backends.with_layout("NCHW")),
        (request.dynamic_size, "--dynamic-size", backends.with_dynamic_size()),
    ):
        lacking = [f for f in request.formats if f not in offering]
        if wanted and lacking:
            raise UsageError(
                f"{option} does not apply to {choices(lacking)}; it applies to {choices(offering)}",
                hint=f"export {choices(lacking)} in a separate run without {option}",
            )
    if request.allow_odd_padding and not request.dynamic_size:
        raise UsageError("--allow-odd-padding confirms --dynamic-size; give both or neither")
    if request.dynamic_size and explicit_padding and not request.allow_odd_padding:
        built = f"{resolution} px" if resolution else "its build resolution"
        modulo = f"{resolution} mod 32" if resolution else "it mod 32"
        raise UsageError(
            f"--dynamic-size: {name} pads its stride-2 convolutions explicitly for {built} "
            f"(keras.applications' correct_pad); at a size not congruent to {modulo} some "
            "feature map is odd where it was even (or the reverse), and the outputs differ from "
            "a model built at that size",
            hint="pass --allow-odd-padding to export it anyway, or use a family with 'same' "
            f"padding: {same_padding_models()}",
        )


def same_padding_models() -> str:
    """The models whose networks pad 'same' (any size is right): 'seed-b0..seed-b7, v2-b0..v2-l'."""
    spans = []
    for family in S.FAMILIES:
        names = [
            v.name
            for v in S.VARIANTS.values()
            if v.family.name == family and v.family.padding == "same"
        ]
        if names:
            spans.append(f"{names[0]}..{names[-1]}" if len(names) > 1 else names[0])
    return choices(spans)


def explicit_padding_families() -> str:
    return ", ".join(name for name, family in S.FAMILIES.items() if family.padding == "explicit")


def check_quantize(request: ExportRequest) -> str:
    """The precision `--quantize` asks every format to convert into its file."""
    modes = backends.quantize_modes()
    if request.quantize not in modes:
        raise UsageError(f"unknown --quantize {request.quantize!r}; valid: {choices(modes)}")
    precision = "fp32" if request.quantize == "none" else request.quantize
    lacking = [f for f in request.formats if precision not in backends.get(f).file_precisions()]
    if lacking:
        offering = [n for n in backends.formats() if precision in backends.get(n).file_precisions()]
        raise UsageError(
            f"--quantize {request.quantize} is not a precision of {choices(lacking)}; "
            f"it applies to {choices(offering)}"
        )
    return precision


def check_recipe(request: ExportRequest) -> None:
    """`--int8-recipe`: a recipe every int8 format offers, with the verification it needs."""
    recipe = request.int8_recipe
    if recipe is None:
        return
    if recipe not in backends.RECIPES:
        raise UsageError(f"unknown --int8-recipe {recipe!r}; valid: {choices(backends.RECIPES)}")
    if request.quantize != "int8":
        raise UsageError(f"--int8-recipe applies to --quantize int8, not {request.quantize}")
    for fmt in request.formats:
        offered = [r.name for r in backends.get(fmt).precisions["int8"].recipes]
        if recipe not in offered:
            raise UsageError(
                f"--int8-recipe {recipe} is not a recipe of {fmt}; {fmt} offers {choices(offered)}"
            )
    if backends.RECIPES[recipe].steered and not request.verify:
        raise UsageError(
            f"--int8-recipe {recipe} searches with verification's real images; drop --no-verify"
        )


@dataclass(frozen=True, kw_only=True)
class ExportPlan:
    """What `effnet export` does, every option checked: the request, the files it writes, and
    the model they come from (a spec to build, or a `--from` file)."""

    request: ExportRequest
    targets: tuple[Target, ...]
    identity: ModelIdentity
    spec: S.ModelSpec | None
    source: Path | None
    weights: Path | None
    seed: int | None


@dataclass(frozen=True)
class Job:
    """One target's file: where it is staged, the recipe it is written with first (int8), and
    its place in the run ('2/3') for the progress lines."""

    target: Target
    stage: files.Staged
    recipe: backends.Recipe | None
    place: str


def export_model(
    model: Any,
    spec: S.ModelSpec | None,
    request: ExportRequest,
    targets: Sequence[Target],
    progress: Callable[[str], None],
) -> tuple[Artifact, ...]:
    """Write every target from one model; verify each, repairing an int8 file that misses its
    gate where a recipe can; keep what verified (and, with --keep-failed, what did not)."""
    fresh = settle_batchnorm(model, request, progress)
    converter = prepare_converter(model, spec, request, targets, progress)
    request.directory.mkdir(exist_ok=True)
    jobs = [
        Job(target, files.Staged(target.path), first_recipe(target, request), f"{n}/{len(targets)}")
        for n, target in enumerate(targets, 1)
    ]
    try:
        with backends.reusing_conversions():
            # Convert first: tf2onnx needs far more memory in a process that already ran the
            # model forward (B7: 17 GB instead of 9 GB), so the reference runs come after.
            early = write_unsteered(converter, jobs, progress)
            references = answer_references(model, spec, request, fresh, progress)
            refuse_non_finite_model(references)
            written = [
                finish(converter, references, job, early.get(job.target.path), request, progress)
                for job in jobs
            ]
        return keep_passed(written, jobs, request)
    finally:
        for job in jobs:  # failed or interrupted: nothing half-written stays behind
            job.stage.discard()


def settle_batchnorm(model: Any, request: ExportRequest, progress: Callable[[str], None]) -> bool:
    """Whether the model has random weights (fresh BatchNorm statistics); to be verified, it
    gets real statistics first: parity on fresh statistics compares outputs near zero and
    proves nothing (DESIGN §1.1)."""
    from effnet_cli.keras.calibration import calibrate_batchnorm, fresh_batchnorm

    fresh = fresh_batchnorm(model)
    if request.verify and fresh:
        progress("random weights: giving BatchNorm real statistics first (one training-mode pass)")
        calibrate_batchnorm(model, seed=request.seed)
    return fresh


def prepare_converter(
    model: Any,
    spec: S.ModelSpec | None,
    request: ExportRequest,
    targets: Sequence[Target],
    progress: Callable[[str], None],
) -> Converter:
    """What every file is written from: the model (on a (None, None, 3) input with
    --dynamic-size: a model built at its resolution refuses any other size), its metadata, the
    writers' options and, where a target calibrates, the calibration images."""
    from effnet_cli.keras.builder import with_input_size

    calibration = None
    if any(backends.get(t.backend).precisions[t.precision].calibration for t in targets):
        calibration = load_calibration(request.calibration, model.input.shape[1])
        progress(f"calibrating on {calibration.count} images: {calibration.source}")
    layout = "NCHW" if request.nchw else "NHWC"
    return Converter(
        model=with_input_size(model, None) if request.dynamic_size else model,
        meta=metadata(spec, model, layout, request.dynamic_size),
        options=backends.WriterOptions(
            opset=request.opset,
            batch=request.batch,
            optimize=request.optimize,
            calibration=calibration.images if calibration else None,
            nchw=request.nchw,
        ),
        calibration=(
            Calibration(source=calibration.source, images=calibration.count)
            if calibration
            else None
        ),
    )


def write_unsteered(
    converter: Converter, jobs: Sequence[Job], progress: Callable[[str], None]
) -> dict[Path, Write]:
    """Every file that needs no real images, by its target's path: a steered recipe searches
    with the reference runs' real images, so it is written after them (`finish`)."""
    early = {}
    for job in jobs:
        if job.recipe is None or not job.recipe.steered:
            progress(f"writing {job.target.path.name} ({job.place})")
            early[job.target.path] = converter.write(job.target, job.stage.path, job.recipe)
    return early


def answer_references(
    model: Any,
    spec: S.ModelSpec | None,
    request: ExportRequest,
    fresh: bool,
    progress: Callable[[str], None],
) -> References:
    """The Keras model's answers every file is verified against: on seeded random images
    (drift) and, when verifying, on real images (accuracy)."""
    from effnet_cli.keras.builder import logits_function

    inputs, expected = reference_outputs(
        model,
        request.seed,
        verification_batches(request),
        verification_sizes(request, model.input.shape[1]),
    )
    return References(
        inputs=inputs,
        expected=expected,
        compared="logits" if logits_function(model) else "outputs",
        real=(
            real_images(model, spec, request.verify_images, fresh, progress)
            if request.verify
            else None
        ),
    )


def finish(
    converter: Converter,
    references: References,
    job: Job,
    early: Write | None,
    request: ExportRequest,
    progress: Callable[[str], None],
) -> Artifact:
    """One target written (if it was not before), verified, and repaired where a recipe can."""
    target, path, recipe = job.target, job.stage.path, job.recipe
    if early is None:  # a steered --int8-recipe
        assert recipe is not None  # only a recipe is left unwritten by write_unsteered
        progress(f"writing {target.path.name} ({job.place}), {recipe.name}")
        early = converter.write(target, path, recipe, references.steer(target, recipe))
    took, done = early
    verification = None
    if request.verify:
        progress(
            f"verifying {target.path.name} with its own runtime "
            f"({references.compared}) ({job.place})"
        )
        verification = references.verify(target, path)
    recipe_used = recipe_record(recipe, done, verification) if recipe else None
    # (a repairable file has recipes, so it has a recipe document)
    if recipe_used is not None and repairable(target, request, verification):
        took, verification, recipe_used = repair(
            converter, references, target, path, recipe_used, took, progress
        )
    calibrated = backends.get(target.backend).precisions[target.precision].calibration
    return Artifact(
        format=target.backend,
        path=target.path,
        precision=target.precision,
        bytes=files.size_bytes(path),
        time_s=took,
        kept=False,  # until its file is moved into place (keep_passed)
        calibration=converter.calibration if calibrated else None,
        int8=recipe_used,
        verification=verification,
    )


def keep_passed(
    written: Sequence[Artifact], jobs: Sequence[Job], request: ExportRequest
) -> tuple[Artifact, ...]:
    """The files that passed moved into place, and a failed one with --keep-failed: one failure
    never costs the files that passed; any failure is raised with every artifact's record."""
    artifacts = tuple(
        keep(artifact, job.stage) if artifact.passed or request.keep_failed else artifact
        for artifact, job in zip(written, jobs, strict=True)
    )
    failed = [a for a in artifacts if not a.passed]
    if failed:
        names = ", ".join(a.path.name + tried_recipes(a) + non_finite_note(a) for a in failed)
        raise ExportFailed(f"verification failed for {names}", artifacts)
    return artifacts


Write = tuple[float, dict[str, Any] | None]  # seconds it took, and what its recipe did


@dataclass(frozen=True, kw_only=True)
class Converter:
    """What every target of one export is written from."""

    model: Any  # what the writers convert (the --dynamic-size clone, if asked)
    meta: dict[str, str]
    options: backends.WriterOptions  # the writers' options from the request
    calibration: Calibration | None  # the int8 calibration images, for the records

    def write(
        self, target: Target, path: Path, recipe: backends.Recipe | None, steer: Steer | None = None
    ) -> Write:
        """Write `target` to `path`, replacing an earlier attempt, with `recipe` (int8; `steer`:
        the real images a steered recipe searches with)."""
        files.remove(path)
        write = backends.get(target.backend).write
        if write is None:  # the plan offers only formats that write: a bug if reached
            raise ValueError(f"{target.backend} writes no files")
        meta = {**self.meta, "precision": target.precision}
        started = time.perf_counter()
        with files.stdout_to_stderr(), files.silenced_stderr():
            if recipe is None:  # the writer's own default recipe
                done = write(
                    self.model, path, precision=target.precision, meta=meta, **self.options
                )
            else:
                done = write(
                    self.model,
                    path,
                    precision=target.precision,
                    meta=meta,
                    recipe=recipe,
                    steer=steer,
                    **self.options,
                )
        return time.perf_counter() - started, done


@dataclass(frozen=True, kw_only=True)
class References:
    """The Keras model's answers each file is verified against: on seeded random images per
    (batch, size) for drift, and on real images for accuracy (None: not verified)."""

    inputs: dict[Case, Any]
    expected: dict[Case, Any]
    compared: str  # "logits" or "outputs"
    real: RealImages | None

    def verify(self, target: Target, path: Path) -> Verification:
        with files.stdout_to_stderr(), files.silenced_stderr():
            return verify(target, path, self.inputs, self.expected, self.compared, self.real)

    def steer(self, target: Target, recipe: backends.Recipe) -> Steer | None:
        """The real images a steered recipe searches with (None for the others)."""
        if not recipe.steered:
            return None
        real = self.real
        if real is None or real.inputs is None or real.not_judged:
            why = real.not_judged if real is not None and real.not_judged else "not verified"
            raise WorkError(
                f"--int8-recipe {recipe.name} searches with the accuracy on real images, and "
                f"this model has none to keep ({why})",
                hint="use --int8-recipe default, or a trained model (--weights)",
            )
        return Steer(real.inputs, real.expected, gate(target))


def refuse_non_finite_model(references: References) -> None:
    """The model itself answers NaN or infinities (finite weights can overflow): no file of it
    can be verified, and none is worth writing."""
    answers = [*references.expected.values()]
    real = references.real
    if real is not None and real.expected is not None:
        answers.append(real.expected)
    for answer in answers:
        found = non_finite(answer)
        if found:
            raise WorkError(
                f"the model's own {references.compared} hold {found} of {answer.size:,}: nothing "
                "written, since no file of it can be verified",
                hint="its weights overflow or are damaged; export a sound model",
            )


def first_recipe(target: Target, request: ExportRequest) -> backends.Recipe | None:
    """The recipe a target is written with first: `--int8-recipe`, else its precision's first
    (None: a precision without recipes)."""
    recipes = backends.get(target.backend).precisions[target.precision].recipes
    if not recipes:
        return None
    return backends.RECIPES[request.int8_recipe] if request.int8_recipe else recipes[0]


def repairable(target: Target, request: ExportRequest, verification: Verification | None) -> bool:
    """An int8 file missed the accuracy gate, no recipe was fixed, and more recipes are left."""
    recipes = backends.get(target.backend).precisions[target.precision].recipes
    accuracy = verification.accuracy if verification else None
    return (
        len(recipes) > 1
        and request.int8_recipe is None
        and accuracy is not None
        and accuracy.passed is False
    )


def recipe_record(
    recipe: backends.Recipe, done: dict[str, Any] | None, verification: Verification | None
) -> Int8Recipe:
    """The recipe an int8 file was written with and what it did (keep-float: `float_layers` of
    `layers`), with its agreement on the real images, as the one entry of `tried`."""
    did = dict(done or {})
    attempt = RecipeAttempt(
        recipe=recipe.name,
        float_layers=did.pop("float_layers", None),
        layers=did.pop("layers", None),
    )
    if did:  # a writer says something the record has no field for: a bug if reached
        raise ValueError(f"{recipe.name} did what no record says: {sorted(did)}")
    accuracy = verification.accuracy if verification else None
    if accuracy is not None and accuracy.images:
        attempt = replace(
            attempt,
            figures=RecipeFigures(
                top1_agreement=accuracy.top1_agreement,
                top5_overlap=accuracy.top5_overlap,
                sqnr_db=accuracy.sqnr_db,
                passed=accuracy.passed,
            ),
        )
    return taken(attempt, (attempt,))


def repair(
    converter: Converter,
    references: References,
    target: Target,
    path: Path,
    recipe_used: Int8Recipe,
    took: float,
    progress: Callable[[str], None],
) -> tuple[float, Verification, Int8Recipe]:
    """Try the target's next recipes in order until one reaches the gate. The last one tried
    is kept, and refused by the caller if it missed too."""
    recipes = backends.get(target.backend).precisions[target.precision].recipes
    tried = list(recipe_used.tried)
    for n, recipe in enumerate(recipes[1:], 2):
        progress(
            f"{target.path.name} misses the accuracy gate with {tried[-1].recipe}; "
            f"trying {recipe.name} ({n}/{len(recipes)}): {recipe.summary}"
        )
        seconds, done = converter.write(target, path, recipe, references.steer(target, recipe))
        took += seconds
        verification = references.verify(target, path)
        recipe_used = recipe_record(recipe, done, verification)
        tried.extend(recipe_used.tried)
        if verification.passed:
            break
    return took, verification, replace(recipe_used, tried=tuple(tried))


def tried_recipes(artifact: Artifact) -> str:
    """' (int8 recipes tried: default, percentile, keep-float)' after a refused repaired file."""
    tried = artifact.int8.tried if artifact.int8 is not None else ()
    if len(tried) < 2:
        return ""
    return f" (int8 recipes tried: {', '.join(t.recipe for t in tried)})"


def non_finite_note(artifact: Artifact) -> str:
    """' (its outputs hold 16 NaN values of 16,000)' for a file that answered NaN, else ''."""
    verification = artifact.verification
    return f" ({verification.non_finite})" if verification and verification.non_finite else ""


def keep(artifact: Artifact, stage: files.Staged) -> Artifact:
    """The artifact's file moved into place: the record of it says it is kept."""
    stage.commit()
    return replace(artifact, kept=True)


def verification_batches(request: ExportRequest) -> list[int]:
    """Batch sizes to verify drift at: 1 and 3, or the fixed batch; none without verification."""
    if not request.verify:
        return []
    return [request.batch] if request.batch else [1, 3]


def verification_sizes(request: ExportRequest, resolution: int) -> list[int]:
    """Input sizes to verify at: the model's resolution, and with --dynamic-size one more."""
    return [resolution, resolution + SECOND_SIZE_STEP] if request.dynamic_size else [resolution]


def reference_outputs(
    model: Any, seed: int, batches: list[int], sizes: list[int] | None = None
) -> tuple[dict[Case, Any], dict[Case, Any]]:
    """Seeded random images per (batch, size), and the Keras model's logits (or outputs) on
    them: at the model's own size from `model`, at another size from a model of the same layers
    and weights built on that size (BatchNorm statistics are weights: calibrated once)."""
    import numpy as np

    from effnet_cli.keras.builder import with_input_size

    resolution = model.input.shape[1]
    rng = np.random.default_rng(seed + 1)
    inputs, expected = {}, {}
    for size in (sizes or [resolution]) if batches else []:
        sized = model if size == resolution else with_input_size(model, size)
        height, width = sized.input.shape[1:3]
        images = [rng.uniform(0, 255, (b, height, width, 3)).astype("float32") for b in batches]
        # One call for every batch: each eager call (or tf.function trace) costs fixed time.
        answers = np.split(keras_answers(sized, np.concatenate(images)), np.cumsum(batches)[:-1])
        for batch, batch_images, answer in zip(batches, images, answers, strict=True):
            inputs[batch, size], expected[batch, size] = batch_images, answer
    return inputs, expected


class ExportFailed(WorkError):
    """Some file missed its gate: the artifacts say what was written, kept and refused."""

    def __init__(self, message: str, artifacts: tuple[Artifact, ...]) -> None:
        super().__init__(message, hint="--keep-failed keeps the files for inspection")
        self.artifacts = artifacts


def run_export(plan: ExportPlan, progress: Callable[[str], None]) -> tuple[Artifact, ...]:
    """`effnet export`: build (or load) the model once, then write and verify every target."""
    from effnet_cli.keras import archive

    spec, source = plan.spec, plan.source
    if plan.request.quantize == "int8" and (spec is None or spec.family.name != "lite"):
        progress(
            "warning: post-training int8 costs EfficientNet-B much of its accuracy (SE and swish "
            "quantize badly); the Lite family (--model lite0..lite4) is built for int8"
        )
    if source is not None:
        progress(f"loading {source}")
    elif spec is not None:  # (the plan holds one or the other)
        progress(f"building {spec.name}")
    model = archive.load_or_build(spec, source, plan.weights, plan.seed)
    return export_model(model, spec, plan.request, plan.targets, progress)
