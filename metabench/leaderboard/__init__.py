"""metabench.leaderboard."""
