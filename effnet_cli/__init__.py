"""effnet: build, inspect, export and benchmark EfficientNet models (Tan & Le, 2019).

The Python API is small and typed; importing it does not load TensorFlow until a model is built::

    from effnet_cli import build_model, count, get_spec

    spec = get_spec("b3", num_classes=10)
    print(count(spec).params)        # analytic, no TensorFlow
    model = build_model(spec)        # a keras.Model, keras.applications-compatible
"""

__version__ = "0.1.0"

from effnet_cli.keras.builder import build_model  # TensorFlow loads inside, on call
from effnet_cli.model.costs import count
from effnet_cli.model.spec import get_spec

__all__ = ["__version__", "build_model", "count", "get_spec"]
