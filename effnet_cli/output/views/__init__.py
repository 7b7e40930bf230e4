"""What each command shows a person: one module per command, each `view(sink, document)`."""
