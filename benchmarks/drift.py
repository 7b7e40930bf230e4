"""fp32 export drift: how far each runtime's logits lie from the Keras model's (issue 11, item 4).

Two parts:

* `sweep` runs `effnet export ... --json --keep-failed` in a fresh subprocess for every model,
  seed and format (group), and records each artifact's `verification.max_rel_diff` (max |Δ| over
  max |Keras logit|) and top-1 agreement, with the wall time of the run. Results accumulate in
  benchmarks/results/drift.json (one record per model, resolution, seed and format) and the table
  in drift.md is rewritten after every run, so an interrupted sweep still leaves its numbers.
* `cause` rebuilds one model in-process and compares Keras fp32, onnxruntime fp32 and a float64
  twin of the same weights; it also reports the BatchNorm statistics that the calibration pass
  gave, so the source of the drift can be told apart (see drift.md).

    .venv/bin/python benchmarks/drift.py sweep --models b0,b3 --seeds 0,1,2 \
        --formats onnx,tflite,openvino
    .venv/bin/python benchmarks/drift.py sweep --models b7,b7@300 --seeds 0 --split
    .venv/bin/python benchmarks/drift.py cause --model b7 --resolution 300 --seed 0 --batch 2
    .venv/bin/python benchmarks/drift.py table

Heavy frameworks load only inside `cause` (ruff TID253).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
JSON_PATH = RESULTS / "drift.json"
MD_PATH = RESULTS / "drift.md"
EFFNET = ROOT / ".venv" / "bin" / "effnet"
FORMATS = ("onnx", "tflite", "openvino", "savedmodel", "keras")
# (depth coefficient, native resolution) of the released variants (DESIGN §1.1).
VARIANTS = {
    "b0": (1.0, 224),
    "b1": (1.1, 240),
    "b2": (1.2, 260),
    "b3": (1.4, 300),
    "b4": (1.8, 380),
    "b5": (2.2, 456),
    "b6": (2.6, 528),
    "b7": (3.1, 600),
}
B0_REPEATS = (1, 2, 2, 3, 3, 4, 1)
CAUSE_PATH = RESULTS / "drift_cause.jsonl"
NOTES = "<!-- notes: hand-written, kept when the tables are rewritten -->"
BIG = ("b6", "b7")  # formats go to separate processes: tf2onnx alone peaks near 10 GB on B7


def blocks(model: str) -> int:
    """Number of MBConv blocks: sum of ceil(depth × repeats) (B0 16, B3 26, B7 55)."""
    depth = VARIANTS[model][0]
    return sum(math.ceil(depth * r) for r in B0_REPEATS)


def parse_model(text: str) -> tuple[str, int]:
    """'b7' -> ('b7', 600); 'b7@300' -> ('b7', 300)."""
    name, _, res = text.lower().partition("@")
    if name not in VARIANTS:
        raise SystemExit(f"unknown model {name!r}; valid: {', '.join(VARIANTS)}")
    return name, int(res) if res else VARIANTS[name][1]


def available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


# ---------------------------------------------------------------------------- storage


def load_records() -> list[dict[str, Any]]:
    return json.loads(JSON_PATH.read_text())["records"] if JSON_PATH.exists() else []


def key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["model"], record["resolution"], record.get("head", "none"), record["seed"],
            record["format"])  # fmt: skip


def save_records(new: list[dict[str, Any]]) -> None:
    merged = {key(r): r for r in load_records()}
    merged.update({key(r): r for r in new})
    records = sorted(merged.values(), key=lambda r: (r["blocks"], r["resolution"], r["format"],
                                                     r["seed"]))  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps({"records": records}, indent=1) + "\n")
    notes = ""  # hand-written findings below the marker survive a rewrite of the tables
    if MD_PATH.exists() and NOTES in MD_PATH.read_text():
        notes = NOTES + MD_PATH.read_text().split(NOTES, 1)[1]
    MD_PATH.write_text(render_table(records) + render_causes() + notes)


def render_causes() -> str:
    """The `cause` runs: fp32 error of Keras and onnxruntime against a float64 twin."""
    if not CAUSE_PATH.exists():
        return ""
    lines = [
        "## Against a float64 twin (`drift.py cause`)",
        "",
        "Relative to max |float64 logit|, worst of batch 1 and 3; `calib` is the number of random",
        "images of the BatchNorm calibration pass; `gain max` is max |γ|/√(var+ε) over all BN",
        "channels; `keras↔onnx` is what verification measures.",
        "",
        "| model | res | seed | calib | var min | gain max | max abs logit | Keras32↔f64 "
        "| onnx↔f64 | keras↔onnx | softmax metric |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for text in CAUSE_PATH.read_text().splitlines():
        c = json.loads(text)
        runs = c["runs"]

        def worst(field: str, runs: list[dict[str, Any]] = runs) -> float:
            return max(r.get(field, float("nan")) for r in runs)

        lines.append(
            f"| {c['model']} | {c['resolution']} | {c['seed']} | {c['calibration_batch']} | "
            f"{c['bn']['var_min']:.3f} | {c['bn']['gain_max']:.1f} | "
            f"{worst('max_abs_logit'):.3g} | "
            f"{worst('keras_vs_f64_rel'):.1e} | {worst('onnx_vs_f64_rel'):.1e} | "
            f"{worst('onnx_vs_keras_rel'):.1e} | {worst('onnx_vs_keras_softmax_rel'):.1e} |"
        )
    return "\n".join(lines) + "\n\n"


def render_table(records: list[dict[str, Any]]) -> str:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in records:
        group = (r["blocks"], r["model"], r["resolution"], r.get("head", "none"), r["format"])
        groups.setdefault(group, []).append(r)
    lines = [
        "# fp32 export drift: max |artifact − Keras| / max |Keras logit|",
        "",
        "Written by `benchmarks/drift.py sweep` (logits head, `--classifier-activation none`;",
        "random weights, BatchNorm calibrated by `effnet export`; inputs: seeded uniform [0, 255]",
        "images at batch 1 and 3). `run s` is the wall time of the whole `effnet export` process",
        "that produced the record (several formats may share one process: see `formats`).",
        "",
        "`head`: `none` compares logits; `softmax` is the default head, whose verification (at",
        "commit ce55206) compares probabilities relative to the largest probability.",
        "",
        "| model | blocks | res | head | format | seeds | min | median | max | top-1 min | run s |",
        "|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for (nblocks, model, res, head, fmt), rs in sorted(groups.items()):
        drift = [r["max_rel_diff"] for r in rs if r["max_rel_diff"] is not None]
        if not drift:
            continue
        seeds = ",".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"]))
        top1 = min(r["top1_agreement"] for r in rs)
        wall = statistics.median(r["run_seconds"] for r in rs)
        lines.append(
            f"| {model} | {nblocks} | {res} | {head} | {fmt} | {seeds} | {min(drift):.2e} | "
            f"{statistics.median(drift):.2e} | {max(drift):.2e} | {top1:.2f} | {wall:.0f} |"
        )
    return "\n".join(lines) + "\n\n"


# ---------------------------------------------------------------------------- sweep


def export_once(
    model: str, res: int, seed: int, formats: list[str], src: str | None = None, head: str = "none"
) -> list[dict[str, Any]]:
    """One `effnet export` process; a record per artifact (verification kept even on failure).

    `src`: a directory holding a frozen copy of the effnet_cli package (e.g. `git archive HEAD
    effnet_cli | tar -x -C DIR`), run as `python -m effnet_cli`, so that edits to the working
    tree during a long sweep do not change what is measured.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cli = [str(EFFNET)]
    if src:
        env["PYTHONPATH"] = src
        cli = [sys.executable, "-m", "effnet_cli"]
    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        command = [
            *cli, "export", "--model", model, "--resolution", str(res),
            "--seed", str(seed), "--classifier-activation", head,
            "-f", ",".join(formats), "-o", str(Path(tmp) / "out"),
            "--json", "--force", "--keep-failed",
        ]  # fmt: skip
        memory = available_gb()
        started = time.perf_counter()
        proc = subprocess.run(
            command, env=env, capture_output=True, text=True, check=False, cwd=tmp
        )
        wall = time.perf_counter() - started
    try:
        artifacts = json.loads(proc.stdout)["artifacts"]
    except (json.JSONDecodeError, KeyError):
        tail = proc.stderr.strip().splitlines()[-5:]
        print(f"  no JSON (exit {proc.returncode}): {' | '.join(tail)}", file=sys.stderr)
        return []
    records = []
    for artifact in artifacts:
        check = artifact["verification"] or {}
        records.append(
            {
                "model": model,
                "blocks": blocks(model),
                "resolution": res,
                "seed": seed,
                "head": head,
                "format": artifact["format"],
                "max_rel_diff": check.get("max_rel_diff"),
                "top1_agreement": check.get("top1_agreement"),
                "passed": check.get("passed"),
                "tolerance": check.get("tolerance"),
                "write_seconds": round(artifact["time_s"], 2),
                "run_seconds": round(wall, 1),
                "formats": ",".join(formats),
                "exit_code": proc.returncode,
                "src": src or str(ROOT),
                "mem_available_gb_before": round(memory, 1),
            }
        )
    return records


def sweep(args: argparse.Namespace) -> None:
    formats = [f for f in args.formats.split(",") if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise SystemExit(f"unknown formats {sorted(unknown)}; valid: {', '.join(FORMATS)}")
    for text in args.models.split(","):
        model, res = parse_model(text)
        split = args.split or model in BIG
        groups = [[f] for f in formats] if split else [formats]
        for seed in (int(s) for s in args.seeds.split(",")):
            for group in groups:
                if model in BIG and available_gb() < args.min_free_gb:
                    print(f"  skip {model}@{res} seed {seed} {group}: "
                          f"{available_gb():.1f} GB available", file=sys.stderr)  # fmt: skip
                    continue
                records = export_once(model, res, seed, group, args.src, args.head)
                save_records(records)
                for r in records:
                    print(
                        f"{model}@{res} seed {seed} {r['format']:10} "
                        f"drift {r['max_rel_diff']:.2e} top-1 {r['top1_agreement']:.2f} "
                        f"run {r['run_seconds']:.0f} s (exit {r['exit_code']})",
                        flush=True,
                    )


# ---------------------------------------------------------------------------- cause


def cause(args: argparse.Namespace) -> None:
    """Keras fp32, onnxruntime fp32 and a float64 twin on the same weights, + BN statistics."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from effnet_cli import backends
    from effnet_cli.backends.artifact import metadata
    from effnet_cli.backends.keras import keras_runner
    from effnet_cli.backends.onnx import write_onnx
    from effnet_cli.keras import builder
    from effnet_cli.keras import calibration as keras_calibration

    res = args.resolution or VARIANTS[args.model][1]
    model = builder.build_model(
        args.model, seed=args.seed, classifier_activation="none", resolution=res
    )
    keras_calibration.calibrate_batchnorm(model, seed=args.seed, batch=args.batch)
    report: dict[str, Any] = {
        "model": args.model,
        "blocks": blocks(args.model),
        "resolution": res,
        "seed": args.seed,
        "calibration_batch": args.batch,
    }
    tmp = Path(tempfile.mkdtemp(prefix="drift-cause-"))
    onnx_path = tmp / "m.onnx"
    if args.onnx:  # convert before any inference pass (tf2onnx memory, see export.py)
        meta = metadata(None, model)
        write_onnx(model, onnx_path, opset=17, batch=None, meta=meta)

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    variances = np.concatenate([np.asarray(n.moving_variance) for n in norms])
    gains = np.concatenate(
        [np.abs(np.asarray(n.gamma)) / np.sqrt(np.asarray(n.moving_variance) + 1e-3) for n in norms]
    )
    report["bn"] = {
        "channels": int(variances.size),
        "var_min": float(variances.min()),
        "var_p01": float(np.percentile(variances, 1)),
        "var_median": float(np.median(variances)),
        "var_below_eps": int(np.sum(variances < 1e-3)),
        "var_below_1e-6": int(np.sum(variances < 1e-6)),
        "gain_max": float(gains.max()),
        "gain_p99": float(np.percentile(gains, 99)),
        "gain_median": float(np.median(gains)),
    }

    # The float64 twin: same architecture and weights, every layer computing in float64.
    keras.config.set_dtype_policy("float64")
    try:
        twin = builder.build_model(
            args.model, seed=args.seed, classifier_activation="none", resolution=res
        )
        twin.set_weights(model.get_weights())
        for layer in twin.layers:
            if isinstance(layer, keras.layers.Normalization):
                layer.finalize_state()
    finally:
        keras.config.set_dtype_policy("float32")

    import tensorflow as tf

    run32 = keras_runner(model).run
    run64 = tf.function(lambda x: twin(x, training=False))
    runners = {"keras": run32}
    if args.onnx:
        runners["onnx"] = backends.load_runner("onnx", onnx_path).run
    rng = np.random.default_rng(args.seed + 1)  # the inputs export.reference_outputs uses
    rows = []
    for size in (1, 3):
        images = rng.uniform(0, 255, (size, res, res, 3)).astype("float32")
        truth = np.asarray(run64(tf.constant(images.astype("float64"))))
        outputs = {name: np.asarray(run(images), dtype="float64") for name, run in runners.items()}
        scale = float(np.max(np.abs(truth)))
        row: dict[str, Any] = {
            "batch": size,
            "max_abs_logit": scale,
            "logit_std": float(np.std(truth)),
            "logit_rms": float(np.sqrt(np.mean(truth**2))),
        }
        for name, out in outputs.items():
            delta = np.abs(out - truth)
            row[f"{name}_vs_f64_rel"] = float(delta.max()) / scale
            row[f"{name}_vs_f64_abs"] = float(delta.max())
            row[f"{name}_vs_f64_rms_rel"] = float(np.sqrt(np.mean(delta**2))) / scale
        if "onnx" in outputs:
            ref = outputs["keras"]
            gap = np.abs(outputs["onnx"] - ref)
            row["onnx_vs_keras_rel"] = float(gap.max()) / float(np.max(np.abs(ref)))
            row["onnx_vs_keras_abs"] = float(gap.max())
            row["onnx_vs_keras_rel_std"] = float(gap.max()) / float(np.std(ref))
            # What a softmax head's verification measured: probabilities, relative to the top one.
            p_ref, p_out = softmax(ref), softmax(outputs["onnx"])
            row["onnx_vs_keras_softmax_rel"] = float(np.max(np.abs(p_out - p_ref)) / p_ref.max())
            row["max_softmax_prob"] = float(p_ref.max())
        rows.append(row)
    report["runs"] = rows
    for path in tmp.iterdir():
        path.unlink()
    tmp.rmdir()
    line = json.dumps(report)
    print(line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with CAUSE_PATH.open("a") as handle:
        handle.write(line + "\n")
    save_records([])


def softmax(logits: Any) -> Any:
    import numpy as np

    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("sweep", help="export and record verification drift")
    run.add_argument("--models", default="b0,b3,b7", help="b0,b3,b7 or b7@300 (resolution)")
    run.add_argument("--seeds", default="0,1,2")
    run.add_argument("--formats", default=",".join(FORMATS))
    run.add_argument("--split", action="store_true", help="one process per format")
    run.add_argument("--head", default="none", help="classifier activation: none or softmax")
    run.add_argument("--src", help="run `python -m effnet_cli` from this package copy")
    run.add_argument("--min-free-gb", type=float, default=12.0, help="B6/B7: skip below this")
    why = sub.add_parser("cause", help="Keras fp32 / onnxruntime / float64 twin, BN statistics")
    why.add_argument("--model", default="b7")
    why.add_argument("--resolution", type=int)
    why.add_argument("--seed", type=int, default=0)
    why.add_argument("--batch", type=int, default=2, help="calibration images")
    why.add_argument("--no-onnx", dest="onnx", action="store_false")
    sub.add_parser("table", help="rewrite drift.md from drift.json")
    args = parser.parse_args()
    if args.command == "sweep":
        sweep(args)
    elif args.command == "cause":
        cause(args)
    else:
        save_records([])


if __name__ == "__main__":
    main()
