"""metabench: a terminal workbench for meta-learning research."""

__version__ = "0.1.0"
