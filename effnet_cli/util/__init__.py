"""Leaf services every layer may use: errors, atomic files, CPU capabilities, images, labels.

No framework imports."""
