"""The TUI's screens: three main screens (one per app mode) and the dialogs they open."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metabench.tui.screens.base import MainScreen


def main_screen_classes() -> dict[str, type[MainScreen]]:
    """The main screens by mode name, in navigation order (imported on call: the app loads them lazily)."""
    from metabench.tui.screens.catalog import CatalogScreen
    from metabench.tui.screens.leaderboard import LeaderboardScreen
    from metabench.tui.screens.runs import RunsScreen

    return {"catalog": CatalogScreen, "runs": RunsScreen, "leaderboard": LeaderboardScreen}
