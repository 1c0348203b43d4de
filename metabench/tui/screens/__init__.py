"""The TUI's screens: three main modes (catalog, runs, leaderboard) and their dialogs."""
