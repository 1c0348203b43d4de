"""metabench.methods."""
