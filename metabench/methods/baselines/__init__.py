"""Baselines every meta-learner must beat: pre-training plus a new head, and raw-pixel nearest neighbour."""
