"""metabench.cli."""
