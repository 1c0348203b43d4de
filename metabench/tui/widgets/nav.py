"""The top bar: the app's name and one tab per main screen (click, or press 1/2/3)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Tab, Tabs

MAIN_SCREENS = (("catalog", "1 Catalog"), ("runs", "2 Runs"), ("leaderboard", "3 Leaderboard"))


class NavTabs(Tabs):
    """Tabs that never take focus: keys 1/2/3 switch screens, and focus stays on the content."""

    can_focus = False


class NavBar(Horizontal):
    """Navigation between the main screens; the active tab is the screen it sits on."""

    def __init__(self, active: str) -> None:
        super().__init__(id="navbar")
        self.active = active

    def compose(self) -> ComposeResult:
        yield Label("metabench", id="brand")
        yield NavTabs(*(Tab(label, id=mode) for mode, label in MAIN_SCREENS), active=self.active)

    async def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        mode = event.tab.id
        if mode and mode != self.active:
            # This bar belongs to its screen: put the highlight back for when we return.
            event.tabs.active = self.active
            await self.app.run_action(f"show('{mode}')")
