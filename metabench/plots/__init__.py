"""Charts as files for papers (SVG, PNG), drawn with matplotlib from metabench.leaderboard.figures."""
