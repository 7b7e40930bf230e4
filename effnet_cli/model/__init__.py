"""The model as pure data and arithmetic: spec, families, graph, costs, roofline.

Pure Python: never TensorFlow."""
