"""The Keras side: spec -> keras.Model, weights, BatchNorm calibration.

TensorFlow loads inside the functions that need it."""
