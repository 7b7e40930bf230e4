"""Predict at scale (off by default, ~25 minutes; --quick: ~4): the section's body lives in
benchmarks/scale.py, which benchmarks/scale_sizes.py also runs from."""

from __future__ import annotations

from common import RESULTS, Options


def report(options: Options) -> str:
    from scale import scale_section  # benchmarks/scale.py, not this module

    return scale_section(quick=options.quick, raw_out=RESULTS / "scale-raw.json")
