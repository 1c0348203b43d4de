"""Render leaderboards as one markdown document (results/LEADERBOARD.md); deterministic for diffs."""

from __future__ import annotations

from metabench.config import TRANSDUCTIVE_MARK
from metabench.leaderboard.published import PublishedReference
from metabench.leaderboard.ranking import Leaderboard, LeaderboardRow, seed_list

INTRO = """\
Omniglot few-shot classification, produced by `metabench export`. Accuracy is the mean query
accuracy over the fixed test episodes of the setting, +- the 95% confidence interval
(1.96 x std / sqrt(episodes)). Each board ranks only runs tested on the same episodes (same protocol,
ways, shots, queries, number of test episodes and evaluation seed); runs of other protocols or
episode sets are on boards of their own. Runs that differ only by their seed share one row: its
accuracy is the mean over the seeds, +- the 95% interval over the test episodes of each episode's
accuracy averaged over the seeds. "seeds" gives how many, with the standard deviation of their
accuracies (the spread from training, which that interval leaves out), or says "1 seed". "vs above"
is a paired t-test over the test episodes against the row ranked just above (significant when
p < 0.05), of each episode's accuracy averaged over the seeds both rows have; rows that have only some
seeds in common, or none, say so there. A dagger (†) marks transductive evaluation (BatchNorm with
test-batch statistics), which inflates accuracy. Published numbers are the papers' own, under
protocols that differ from paper to paper: read the notes under each board. Rows ranked "ref" are
published references that are not runs (people and models on Lake's 20 runs); boards of protocols
whose papers print error rates show the error (100 - accuracy) beside the accuracy.
"""


def render_markdown(boards: list[Leaderboard]) -> str:
    """The whole document: a title, how to read it, then one section per setting."""
    parts = ["# metabench leaderboard\n\n", INTRO]
    if not boards:
        parts.append("\nNo finished runs yet: run `metabench run METHOD` and export again.\n")
    for board in boards:
        parts.append("\n" + _section(board))
    return "".join(parts)


def _section(board: Leaderboard) -> str:
    error_rate = board.setting.reports_error_rate
    error_header, error_align = (" error % |", "--:|") if error_rate else ("", "")
    lines = [
        f"## {board.setting.title}",
        "",
        f"| # | method | family | accuracy % |{error_header} seeds | published % | diff | vs above | budget "
        "| device | train time | run |",
        f"|--:|---|---|---|{error_align}---|---|--:|---|---|---|--:|---|",
    ]
    notes: list[str] = []
    for entry in board.entries():
        if isinstance(entry, PublishedReference):
            notes.append(_one_line(f"{len(notes) + 1}. {entry.name}: {entry.paper}, {entry.table}"))
            notes[-1] += f"; {entry.note}" if entry.note else ""
            cells = ["ref", f"*{entry.name}*", "reference", _paper_number(entry.accuracy)]
            cells += [_paper_number(entry.error)] if error_rate else []
            cells += ["-", f"published reference [{len(notes)}]", *["-"] * 6]
            lines.append(_table_row(cells))
            continue
        row = entry
        published = "-"
        if row.published_paper is not None:
            notes.append(
                _one_line(
                    f"{len(notes) + 1}. {row.method}: {row.published_paper}"
                    + (f"; {row.published_note}" if row.published_note else "")
                )
            )
            published = _published(row) + f" [{len(notes)}]"
        cells = [
            str(row.rank),
            row.method + (f" {TRANSDUCTIVE_MARK}" if row.transductive else ""),
            row.family,
        ]
        cells.append(_accuracy(row.accuracy, row.ci95))
        cells += [f"{100.0 - row.accuracy:.2f}"] if error_rate else []
        cells += [
            row.seeds_text,
            published,
            "-" if row.difference is None else f"{row.difference:+.2f}",
            _versus(row),
            f"{row.budget}, {seed_list(row.seeds)}",
            row.device,
            format_duration(row.train_time_s),
            ", ".join(f"`{run_id}`" for run_id in row.run_ids),
        ]
        lines.append(_table_row(cells))
    if notes:
        lines += ["", "Published numbers:", "", *notes]
    return "\n".join(lines) + "\n"


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(text) for text in cells) + " |"


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _cell(text: str) -> str:
    """A table cell that stays one cell: a line break would end the row and a bare | split it
    (GitHub reads \\| as a literal bar, inside code spans too)."""
    return _one_line(text).replace("|", "\\|")


def _accuracy(value: float, ci: float | None) -> str:
    return f"{value:.2f}" if ci is None else f"{value:.2f} +- {ci:.2f}"


def _published(row: LeaderboardRow) -> str:
    if row.published is None:
        return "none published"
    text = _paper_number(row.published)
    return text if row.published_ci is None else f"{text} +- {_paper_number(row.published_ci)}"


def _paper_number(value: float) -> str:
    """As the papers print them: at least one decimal (96.0, not 96), at most two."""
    return f"{value:.1f}" if round(value, 1) == value else f"{value:.2f}"


def _versus(row: LeaderboardRow) -> str:
    if row.p_value_vs_above is None:
        return "-"
    verdict = "significant" if row.significant_vs_above else "not significant"
    p = row.p_value_vs_above
    note = f"; {row.versus_note}" if row.versus_note else ""
    return f"{verdict} (p < 0.001{note})" if p < 0.001 else f"{verdict} (p = {p:.3f}{note})"


def format_duration(seconds: float) -> str:
    """'42.0s', '3m 12s', '1h 05m': compact and unambiguous."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
