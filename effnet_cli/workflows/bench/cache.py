"""Per-machine measurements kept between runs (the GEMM ceiling, the tuned settings)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from effnet_cli.util import capabilities


def cache_dir() -> Path:
    """Where effnet keeps per-machine measurements: $EFFNET_CACHE_DIR, else the XDG cache."""
    explicit = os.environ.get("EFFNET_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "effnet"


def machine_cache_path(prefix: str, key: dict[str, Any]) -> Path:
    """One file per measurement on this machine: `key` with the CPU model and its flags, hashed
    (a measurement on another CPU, or with other flags, is never reused)."""
    import hashlib
    import json

    flags = " ".join(sorted(capabilities.cpu_flags()))
    text = json.dumps({**key, "cpu": capabilities.cpu_name(), "flags": flags}, sort_keys=True)
    return cache_dir() / f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def read_cache_entry(path: Path) -> dict[str, Any] | None:
    """A cached measurement, or None where there is none or it is unreadable."""
    import json

    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def write_cache_entry(path: Path, entry: dict[str, Any]) -> None:
    """One cached measurement (the ceiling, a tuning), written atomically: a temporary file
    beside it, then renamed."""
    import json
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(json.dumps(entry, indent=2) + "\n")
    os.replace(tmp.name, path)
