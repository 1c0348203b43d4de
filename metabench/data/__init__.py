"""metabench.data."""
