"""metabench.runner."""
