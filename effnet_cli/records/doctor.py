"""What `effnet doctor` reports, as frozen records (the schema's `doctor` definition)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from effnet_cli.records.base import OMIT_NONE, Record


@dataclass(frozen=True, kw_only=True)
class Package(Record):
    name: str  # the distribution
    version: str | None  # None: not installed
    required: bool  # missing: doctor exits 1
    purpose: str


@dataclass(frozen=True, kw_only=True)
class BackendOffer(Record):
    """A backend, the devices it runs on and how it offers each precision."""

    name: str
    summary: str
    devices: tuple[str, ...]
    precisions: Mapping[str, str]  # precision -> how: "file", "policy", "hint"


@dataclass(frozen=True, kw_only=True)
class Diagnosis(Record):
    python: str
    platform: str
    cpu_count: int | None
    packages: tuple[Package, ...]
    missing: tuple[str, ...]  # required packages not installed
    incompatible: tuple[str, ...]  # known-broken combinations, each with its reason
    gpus: tuple[str, ...]  # visible to TensorFlow
    onnxruntime_providers: tuple[str, ...]
    cpu: str | None = field(default=None, metadata=OMIT_NONE)  # None: TensorFlow not probed
    backends: tuple[BackendOffer, ...]
    ok: bool  # nothing missing, nothing incompatible
