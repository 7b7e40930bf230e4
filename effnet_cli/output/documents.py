"""The JSON documents of a model: what `summary --json` prints and what other results embed
(`model`). Plain dicts of raw numbers; the views format them, `Sink.emit_json` prints them."""

from __future__ import annotations

from typing import Any

from effnet_cli.model import costs as C
from effnet_cli.model import roofline as R
from effnet_cli.model import spec as S
from effnet_cli.records.spec import spec_model


def model_document(spec: S.ModelSpec) -> dict[str, Any]:
    return spec_model(spec).to_json()


def totals_document(costs: C.Costs) -> dict[str, int]:
    return {
        "params": costs.params,
        "params_trainable": costs.params_trainable,
        "params_non_trainable": costs.params_non_trainable,
        "params_bn_moving": costs.params_bn_moving,
        "params_preprocessing": costs.params_preprocessing,
        "macs": costs.macs,
        "param_bytes": costs.param_bytes,
        "peak_activation_bytes": costs.peak_activation_bytes,
    }


def published_document(spec: S.ModelSpec) -> dict[str, Any] | None:
    published = S.PUBLISHED.get(spec.base)
    if published is None or spec.name != f"efficientnet-{spec.base}":
        return None
    return {
        "params": published.params,
        "macs": published.macs,
        "top1": published.top1,
        "top1_v1": published.top1_v1,
        "source": published.source,
    }


def summary_document(costs: C.Costs, with_layers: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": model_document(costs.spec),
        "input": S.input_contract(costs.spec),
        "totals": totals_document(costs),
        "published": published_document(costs.spec),
        "stages": [vars(stage) for stage in costs.stages],
    }
    if with_layers:
        # bytes moved and arithmetic intensity at float32, batch 1 (model/roofline.py)
        traffic = R.traffic(costs, "fp32", batch=1)
        doc["layers"] = [
            {
                "name": layer.name,
                "class": layer.keras_class,
                "stage": layer.stage,
                "shape": list(layer.shape),
                "params": layer.params,
                "params_trainable": layer.params_trainable,
                "macs": layer.macs,
                "activation_bytes": layer.activation_bytes,
                "bytes": moved.bytes,
                "macs_per_byte": moved.macs_per_byte,
            }
            for layer, moved in zip(costs.layers, traffic.layers, strict=True)
        ]
    return doc
