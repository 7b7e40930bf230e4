"""The sections of `make bench`, one module each; benchmarks/run.py holds their registry.

Each module's `report(options)` returns its part of benchmarks/results/report.md (ceiling has
none: the runtimes section renders it on its own rows). Heavy frameworks load only inside the
functions that need them (ruff TID253), so importing a section costs nothing.
"""
