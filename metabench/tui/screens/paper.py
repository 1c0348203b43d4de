"""One paper's full record: bibliography, arXiv link, note, its survey-table cells and its techniques."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static

from metabench.tui import store

if TYPE_CHECKING:
    from metabench.catalog.model import PaperRecord


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
    """The full record of one paper, with a "benchmark this" button per benchmarkable technique."""

    BINDINGS = [
        Binding("escape", "dismiss", "Back"),
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
                yield Label("", id="techniques-title")
                yield Vertical(id="techniques")
            with Horizontal(classes="dialog-buttons"):
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
        if not record.techniques:
            return
        self.query_one("#techniques-title", Label).update("\n[b]Technique[/b]")
        rows = []
        for index, technique in enumerate(record.techniques):
            family = f"({technique.family}) " if technique.family else ""
            text = Label(f"{family}learns {technique.learnable_component}", classes="technique-text")
            method = technique.benchmark_method
            action = (
                Button(f"Benchmark {method}", id=f"benchmark-{index}", variant="primary", compact=True)
                if method
                else Label("[dim]no benchmark implementation[/dim]", classes="technique-text")
            )
            rows.append(Horizontal(text, action, classes="technique"))
        await self.query_one("#techniques", Vertical).mount_all(rows)
        self.refresh_bindings()
        if self.benchmark_methods():
            self.check_methods()

    @work(thread=True, exit_on_error=False)
    def check_methods(self) -> None:
        """Disable "benchmark" for a method the benchmark does not implement (yet)."""
        methods = self.app.fetch_methods()  # type: ignore[attr-defined]
        if methods is not None:
            self.app.call_from_thread(self._disable_unknown, {m.name for m in methods})

    def _disable_unknown(self, known: set[str]) -> None:
        assert self.record is not None
        for index, technique in enumerate(self.record.techniques):
            method = technique.benchmark_method
            if method and method not in known:
                button = self.query_one(f"#benchmark-{index}", Button)
                button.disabled = True
                button.tooltip = f"{method} is not implemented in this benchmark"
        self.refresh_bindings()

    def benchmark_methods(self) -> list[str]:
        """The benchmark methods this paper's techniques link to, in order."""
        if self.record is None:
            return []
        return [t.benchmark_method for t in self.record.techniques if t.benchmark_method]

    @on(Button.Pressed, "#back")
    def _back(self) -> None:
        self.dismiss()

    @on(Button.Pressed, ".technique Button")
    def _benchmark_pressed(self, event: Button.Pressed) -> None:
        assert self.record is not None and event.button.id is not None
        technique = self.record.techniques[int(event.button.id.removeprefix("benchmark-"))]
        self.app.action_new_run(technique.benchmark_method)  # type: ignore[attr-defined]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # "Benchmark this" is shown dimmed for a paper whose technique the benchmark lacks.
        if action == "benchmark":
            return bool(self._benchmark_buttons()) or None
        return True

    def _benchmark_buttons(self) -> list[Button]:
        return [b for b in self.query(".technique Button").results(Button) if not b.disabled]

    def action_benchmark(self) -> None:
        """Open the run form for the (first) method this paper's technique links to."""
        buttons = self._benchmark_buttons()
        if buttons:
            buttons[0].press()
        else:
            self.notify("This paper has no technique implemented in the benchmark", severity="warning")
