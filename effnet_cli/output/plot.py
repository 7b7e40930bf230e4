"""Plots (matplotlib, loaded only when one is asked for)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from effnet_cli.records.scale import ScaleRow


def plot_scale(families: Mapping[str, Sequence[ScaleRow]], path: Path) -> None:
    """Params and MACs against φ (log scale): released members and the compound rule per family,
    in the spirit of the paper's Figure 1, labelled with the published top-1."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, key, label in ((axes[0], "params", "parameters"), (axes[1], "macs", "MACs")):
        for family, rows in families.items():
            documents = [row.to_json() for row in rows]
            released = [d for d in documents if d[key] is not None and d["phi"] is not None]
            axis.plot(
                [d["phi"] for d in released],
                [d[key] for d in released],
                "o-",
                label=f"{family}: released coefficients",
            )
            ruled = [d for d in documents if d[f"rule_{key}"] is not None]
            axis.plot(
                [d["phi"] for d in ruled],
                [d[f"rule_{key}"] for d in ruled],
                "s--",
                label=f"{family}: compound rule",
            )
            for d in released:
                if d["published_top1"] is not None:
                    axis.annotate(
                        f"{d['published_top1']}%",
                        (d["phi"], d[key]),
                        fontsize=8,
                        textcoords="offset points",
                        xytext=(4, -12),
                    )
        axis.set_yscale("log")
        axis.set_xlabel("φ (compound coefficient)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("EfficientNet cost against φ (labels: published ImageNet top-1 %)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
