"""The model as pure data and arithmetic: spec, families, graph, costs.

Pure Python: never TensorFlow."""
