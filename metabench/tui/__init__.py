"""metabench.tui."""
