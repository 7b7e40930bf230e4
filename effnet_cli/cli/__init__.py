"""The Typer app: thin commands that parse, call a workflow, and hand its result to output."""
