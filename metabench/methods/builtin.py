"""Imports every built-in method module so that each registers itself."""

from metabench.methods.baselines import pixels_nn, pretrain  # noqa: F401
from metabench.methods.compare import protonet  # noqa: F401
from metabench.methods.init import maml  # noqa: F401
