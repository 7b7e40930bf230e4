"""What the commands do: export, verify, inspect, predict, doctor, bench.

Framework-free at import: each loads its runtime inside the function that runs it."""
