"""What `effnet scale-table` reports: each family member's released coefficients and costs
beside the compound rule's at the same φ, with the paper's figures; flat rows (their fields are
the CSV's columns), the rule's constants and the notes the rows need."""

from __future__ import annotations

from dataclasses import dataclass

from effnet_cli.model import costs as C
from effnet_cli.model import spec as S
from effnet_cli.records.base import Record


@dataclass(frozen=True, kw_only=True)
class ScaleRow(Record):
    """One φ of a family: None where a side does not exist (no released member at a rule-only
    φ, no rule for a hand-scaled member, nothing published)."""

    name: str | None = None
    phi: float | None = None
    width: float | None = None
    depth: float | None = None
    resolution: int | None = None
    published_train_resolution: int | None = None
    dropout: float | None = None
    published_dropout: float | None = None
    params: int | None = None
    params_trainable: int | None = None
    macs: int | None = None
    peak_activation_bytes: int | None = None
    params_ratio: float | None = None  # to the family's φ = 0 member
    macs_ratio: float | None = None
    published_params: int | None = None
    published_macs: int | None = None
    published_top1: float | None = None
    rule_width: float | None = None
    rule_depth: float | None = None
    rule_resolution: int | None = None
    rule_params: int | None = None
    rule_macs: int | None = None


@dataclass(frozen=True, kw_only=True)
class ScaleTable(Record):
    alpha: float
    beta: float
    gamma: float
    alpha_beta2_gamma2: float
    resolution_rounding: str
    notes: tuple[str, ...]
    rows: tuple[ScaleRow, ...]


def scale_row(row: C.ScaleRow, origin: C.Costs) -> ScaleRow:
    """Raw numbers (CSV-ready); ratios are to `origin`, the family's φ = 0 member."""
    spec, costs, rule, rule_costs = row.released, row.released_costs, row.rule, row.rule_costs
    published = S.PUBLISHED.get(spec.base) if spec else None
    released = spec is not None and costs is not None
    ruled = rule is not None and rule_costs is not None
    return ScaleRow(
        name=spec.name if spec else None,
        phi=row.phi,
        width=spec.width if released and spec else None,
        depth=spec.depth if released and spec else None,
        resolution=spec.resolution if released and spec else None,
        published_train_resolution=published.train_resolution if published else None,
        dropout=spec.dropout if released and spec else None,
        published_dropout=published.dropout if published else None,
        params=costs.params if released and costs else None,
        params_trainable=costs.params_trainable if released and costs else None,
        macs=costs.macs if released and costs else None,
        peak_activation_bytes=costs.peak_activation_bytes if released and costs else None,
        params_ratio=costs.params / origin.params if released and costs else None,
        macs_ratio=costs.macs / origin.macs if released and costs else None,
        published_params=_whole(published.params) if published else None,
        published_macs=_whole(published.macs) if published else None,
        published_top1=published.top1 if published else None,
        rule_width=rule.width if ruled and rule else None,
        rule_depth=rule.depth if ruled and rule else None,
        rule_resolution=rule.resolution if ruled and rule else None,
        rule_params=rule_costs.params if ruled and rule_costs else None,
        rule_macs=rule_costs.macs if ruled and rule_costs else None,
    )


def _whole(count: float | None) -> int | None:
    """A published count as an integer (the tables give 5.3M as 5300000.0)."""
    return None if count is None else int(count)


def scale_table(
    alpha: float, beta: float, gamma: float, notes: list[str], rows: list[ScaleRow]
) -> ScaleTable:
    return ScaleTable(
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        alpha_beta2_gamma2=alpha * beta**2 * gamma**2,
        resolution_rounding="224 * gamma**phi to the nearest integer",
        notes=tuple(notes),
        rows=tuple(rows),
    )
