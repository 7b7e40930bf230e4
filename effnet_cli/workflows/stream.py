"""Classifying many images: one per-batch function, and the local engine that feeds it
(docs/scale.md). Ray's engine (ray_engine.py) runs the same per-batch function in its actors.

inputs -> decode and prepare (parallel workers) -> batched inference -> rows, streamed out.

Each image is decoded once and prepared at every resolution the run's models take; an image that
cannot be read or whose scores are not finite becomes a row with an `error`, never the run's end.
The local engine keeps at most `PREFETCH_BATCHES` batches of prepared pixels ahead of inference,
so memory does not grow with the number of images; threads suffice, because Pillow and the
runtimes release the GIL while they work.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from effnet_cli.data import images
from effnet_cli.util.drift import top_k
from effnet_cli.workflows import classify as C

PREFETCH_BATCHES = 2  # batches prepared ahead of the one being inferred
EVALUATE_K = 5
Row = dict[str, Any]


@dataclass(frozen=True)
class Job:
    """What a run computes for each image, the same in every engine (picklable: Ray's actors
    receive it and load the artifacts themselves)."""

    kind: Literal["predict", "evaluate"]
    artifacts: tuple[str, ...]  # files, in order; the first is evaluate's reference
    sizes: tuple[int, ...]  # each model's resolution
    resize: str = "crop"
    top: int = 5  # predict: classes per row
    labels: tuple[str, ...] | None = None  # predict: class names (None: indices only)
    threads: int | None = None  # each model's runtime threads
    draft: bool = False  # decode JPEGs by Pillow's draft mode (docs/scale.md)

    def columns(self) -> list[str]:
        """The rows' columns, in order (every format writes them all)."""
        if self.kind == "predict":
            ranked = [
                f"{name}_{r}"
                for r in range(1, self.top + 1)
                for name in ("class", "probability", "label")
            ]
            return ["path", "error", *ranked]
        per_model = [
            f"{name}_{n}"
            for n in range(len(self.artifacts))
            for name in ("top5", "top1_correct", "top5_correct")
        ]
        return ["path", "class", "error", *per_model]


@dataclass(frozen=True)
class Item:
    """One image to classify; evaluate knows its true class."""

    path: str
    truth: int | None = None


@dataclass
class Prepared:
    """One image decoded and prepared at each size, or why it could not be."""

    pixels: dict[int, Any] = field(default_factory=dict)
    error: str | None = None
    conversion: str | None = None  # what decode converted (said once per kind by the caller)
    decode_s: float = 0.0


def prepare(path: str, sizes: Sequence[int], resize: str, draft: bool = False) -> Prepared:
    """Decode `path` once and prepare it at every size (a worker's whole job)."""
    began = time.perf_counter()
    conversions = images.Conversions()
    try:
        image = images.decode(Path(path), conversions, draft=2 * max(sizes) if draft else None)
        pixels = {size: images.prepare(image, size, resize) for size in dict.fromkeys(sizes)}
    except images.ImageError as exc:
        return Prepared(error=exc.why, decode_s=time.perf_counter() - began)
    except Exception as exc:  # one image's surprise never ends the run: it is that row's error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return Prepared(
            error=f"{type(exc).__name__}: {first}", decode_s=time.perf_counter() - began
        )
    kind = next(iter(conversions.counts), None)
    return Prepared(pixels, None, kind, time.perf_counter() - began)


def classify_batch(
    models: Sequence[C.Loaded],
    job: Job,
    items: Sequence[Item],
    prepared: Sequence[Prepared],
    seconds: list[float] | None = None,
) -> list[Row]:
    """The per-batch function every engine runs: the prepared images through each model, one
    row per image (errors included), in the batch's order; each model's inference seconds are
    added to `seconds`."""
    import numpy as np

    errors = [p.error for p in prepared]
    good = [i for i, error in enumerate(errors) if error is None]
    probs: list[Any] = []
    for n, (model, size) in enumerate(zip(models, job.sizes, strict=True)):
        if not good:
            probs.append(None)
            continue
        batch = np.stack([prepared[i].pixels[size] for i in good])
        began = time.perf_counter()
        scored = C.probabilities(model, batch)
        if seconds is not None:
            seconds[n] += time.perf_counter() - began
        out = np.full((len(items), scored.shape[1]), np.nan, dtype=np.float32)
        out[good] = scored
        probs.append(out)
        for i in good:  # a NaN or Inf score is no answer: that image's row says so
            if errors[i] is None and not np.all(np.isfinite(out[i])):
                errors[i] = f"{model.label} gave non-finite scores"
    make = _predict_row if job.kind == "predict" else _evaluate_row
    return [
        make(job, item, errors[i], [p[i] if p is not None else None for p in probs])
        for i, item in enumerate(items)
    ]


def _predict_row(job: Job, item: Item, error: str | None, probs: list[Any]) -> Row:
    row: Row = {"path": item.path, "error": error}
    ranked = top_k(probs[0][None, :], min(job.top, probs[0].shape[0]))[0] if error is None else []
    for rank in range(1, job.top + 1):
        index = int(ranked[rank - 1]) if rank <= len(ranked) else None
        row[f"class_{rank}"] = index
        row[f"probability_{rank}"] = float(probs[0][index]) if index is not None else None
        row[f"label_{rank}"] = job.labels[index] if index is not None and job.labels else None
    return row


def _evaluate_row(job: Job, item: Item, error: str | None, probs: list[Any]) -> Row:
    row: Row = {"path": item.path, "class": item.truth, "error": error}
    for n, scores in enumerate(probs):
        if error is not None:
            row |= {f"top5_{n}": None, f"top1_correct_{n}": 0, f"top5_correct_{n}": 0}
            continue
        best = [int(c) for c in top_k(scores[None, :], min(EVALUATE_K, scores.shape[0]))[0]]
        row[f"top5_{n}"] = " ".join(map(str, best))
        row[f"top1_correct_{n}"] = int(best[0] == item.truth)
        row[f"top5_correct_{n}"] = int(item.truth in best)
    return row


# ------------------------------------------------------------------------------ the local engine


@dataclass
class Stats:
    """What rows say: how many were classified or failed, the first failure, evaluate's sums,
    and, for a run of the local engine, where its time went. Rows read back from an output
    (`--resume`) are counted the same way."""

    classified: int = 0
    failed: int = 0
    first_error: tuple[str, str] | None = None  # (path, why)
    sums: dict[str, int] = field(default_factory=dict)  # evaluate's *_correct_* columns
    decode_s: float = 0.0  # summed over the workers
    infer_s_per_model: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    conversions: images.Conversions = field(default_factory=images.Conversions)

    @property
    def infer_s(self) -> float:
        return sum(self.infer_s_per_model)

    def count(self, rows: Sequence[Row]) -> None:
        for row in rows:
            for key, value in row.items():
                if "_correct_" in key and value not in (None, ""):
                    self.sums[key] = self.sums.get(key, 0) + int(value)
            if row["error"] in (None, ""):  # a CSV cell holds "" for none
                self.classified += 1
                continue
            self.failed += 1
            if self.first_error is None:
                self.first_error = (str(row["path"]), str(row["error"]))


def run_local(
    models: Sequence[C.Loaded],
    job: Job,
    items: Iterable[Item],
    batch: int,
    workers: int,
    emit: Callable[[list[Row]], None],
) -> Stats:
    """Classify `items` in batches of `batch`, decoding on `workers` threads while the models
    infer; each batch's rows go to `emit` as soon as they exist."""
    stats = Stats(infer_s_per_model=[0.0] * len(models))
    began = time.perf_counter()
    pending: deque[tuple[Item, Future[Prepared]]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="effnet-decode") as pool:

        def fill() -> None:
            while len(pending) < batch * (PREFETCH_BATCHES + 1):
                item = next(source, None)
                if item is None:
                    return
                future = pool.submit(prepare, item.path, job.sizes, job.resize, job.draft)
                pending.append((item, future))

        fill()
        while pending:
            taken = [pending.popleft() for _ in range(min(batch, len(pending)))]
            fill()  # the workers decode the next batches while this one is inferred
            prepared = [future.result() for _, future in taken]
            items_now = [item for item, _ in taken]
            rows = classify_batch(models, job, items_now, prepared, stats.infer_s_per_model)
            for p in prepared:
                stats.decode_s += p.decode_s
                if p.conversion:
                    stats.conversions.add(p.conversion)
            stats.count(rows)
            emit(rows)
    stats.wall_s = time.perf_counter() - began
    return stats
