"""metabench.bench."""
