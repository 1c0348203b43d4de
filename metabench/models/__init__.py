"""metabench.models."""
