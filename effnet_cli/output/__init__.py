"""The only place that formats output: tables, JSON, CSV, markdown, plots, progress."""
