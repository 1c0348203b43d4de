"""metabench.catalog."""
