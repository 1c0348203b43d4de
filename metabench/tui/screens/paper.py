"""One paper's full record: bibliography, arXiv link, note, its survey-table cells and its techniques."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from metabench.tui import store

if TYPE_CHECKING:
    from metabench.catalog.model import PaperRecord
    from metabench.methods.card import MethodCard


def record_markup(record: PaperRecord) -> str:
    """The bibliographic part of the record as Textual content markup."""
    from metabench.catalog.model import family_heading  # loaded already, with the record

    paper = record.paper
    lines = [
        f"[b]{escape(paper.title)}[/b]",
        "",
        f"[dim]authors[/dim]  {escape(', '.join(paper.authors))}",
        f"[dim]venue[/dim]    {escape(paper.venue)}",
        f"[dim]year[/dim]     {paper.year}",
        f"[dim]cite key[/dim] {escape(paper.cite_key)}  ({escape(paper.short_cite)})",
    ]
    if paper.arxiv:
        url = f"https://arxiv.org/abs/{paper.arxiv}"
        lines.append(f'[dim]arXiv[/dim]    [link="{url}"]{escape(paper.arxiv)}[/link]  {escape(url)}')
    if paper.url and (not paper.arxiv or paper.arxiv not in paper.url):
        lines.append(f'[dim]url[/dim]      [link="{paper.url}"]{escape(paper.url)}[/link]')
    for technique in record.techniques:  # near the top: a small window still shows what it learns
        family = f"  [dim]({escape(technique.family)})[/dim]" if technique.family else ""
        lines.append(f"[dim]learns[/dim]   {escape(technique.learnable_component)}{family}")
    if paper.note:
        lines += ["", f"[b]note[/b] {escape(paper.note)}"]
    lines += ["", "[b]In the survey table[/b]"]
    if record.cells:
        for cell in record.cells:
            where = family_heading(cell.family) + (f", {cell.subfamily}" if cell.subfamily else "")
            lines.append(f"  • {escape(cell.application)}  [dim]{escape(where)}[/dim]")
    else:
        lines.append("  [dim]not cited in the table (a method paper)[/dim]")
    return "\n".join(lines)


class PaperScreen(ModalScreen[None]):
    """The full record of one paper, with a "Benchmark <method>" button per method of the paper."""

    BINDINGS = [
        Binding("escape,q", "dismiss", "Back"),
        Binding("b", "benchmark", "Benchmark this"),
    ]

    def __init__(self, cite_key: str) -> None:
        super().__init__(classes="dialog-screen")
        self.cite_key = cite_key
        self.record: PaperRecord | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="paper-dialog", classes="dialog"):
            with VerticalScroll(id="paper-body"):
                yield Static("", id="paper-record")
            with Horizontal(classes="dialog-buttons", id="paper-buttons"):
                yield Button("Back", id="back")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#paper-dialog").loading = True
        self.load()

    @work(thread=True, exit_on_error=False)
    def load(self) -> None:
        record = store.paper_record(self.app.db_path, self.cite_key)  # type: ignore[attr-defined]
        self.app.call_from_thread(self._show, record)

    async def _show(self, record: PaperRecord | None) -> None:
        self.query_one("#paper-dialog").loading = False
        if record is None:
            self.query_one("#paper-record", Static).update(f"No paper with cite key {escape(self.cite_key)}")
            return
        self.record = record
        self.query_one("#paper-dialog").border_title = record.paper.short_cite
        self.query_one("#paper-record", Static).update(record_markup(record))
        self.check_methods()

    @work(thread=True, exit_on_error=False)
    def check_methods(self) -> None:
        """Offer "Benchmark <method>" for each method of this paper: its techniques', and cards citing it."""
        cards = self.app.fetch_methods()  # type: ignore[attr-defined]
        self.app.call_from_thread(self._show_methods, [] if cards is None else cards)

    async def _show_methods(self, cards: list[MethodCard]) -> None:
        assert self.record is not None
        linked = [t.benchmark_method for t in self.record.techniques if t.benchmark_method]
        citing = [card.name for card in cards if card.cite_key == self.cite_key]
        known = {card.name for card in cards}
        buttons = []
        for method in dict.fromkeys([*linked, *citing]):  # in order, once each
            # The button's name is the method it launches.
            button = Button(f"Benchmark {method}", name=method, variant="primary", classes="benchmark")
            if method not in known:
                button.disabled = True
                button.tooltip = f"{method} is not implemented in this benchmark"
            buttons.append(button)
        await self.query_one("#paper-buttons", Horizontal).mount_all(buttons, before=0)
        self.refresh_bindings()

    def benchmark_methods(self) -> list[str]:
        """The benchmark methods offered for this paper, implemented or not, in order."""
        return [button.name or "" for button in self.query(".benchmark").results(Button)]

    @on(Button.Pressed, "#back")
    def _back(self) -> None:
        self.dismiss()

    @on(Button.Pressed, ".benchmark")
    def _benchmark_pressed(self, event: Button.Pressed) -> None:
        self.app.action_new_run(event.button.name)  # type: ignore[attr-defined]

    def _benchmark_buttons(self) -> list[Button]:
        return [b for b in self.query(".benchmark").results(Button) if not b.disabled]

    def action_benchmark(self) -> None:
        """Open the run form for this paper's method; with several, focus their buttons to choose."""
        buttons = self._benchmark_buttons()
        if len(buttons) == 1:
            buttons[0].press()
        elif buttons:
            buttons[0].focus()
            names = ", ".join(button.name or "" for button in buttons)
            self.notify(f"This paper has several methods: {names}. Choose one (tab, enter).")
        else:
            self.notify("No method of this paper is implemented in the benchmark", severity="warning")
