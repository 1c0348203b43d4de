"""`metabench methods [NAME]`: the methods' cards, their budgets and what `--set` accepts (no torch)."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from metabench.cli.common import JsonOption, budget_text, console, one_line_errors, print_json
from metabench.config import TRANSDUCTIVE_MARK
from metabench.errors import MetabenchError


def register(app: typer.Typer) -> None:
    """Attach `methods` to the root app."""
    app.command("methods")(methods_command)


@one_line_errors
def methods_command(
    name: str | None = typer.Argument(None, help="A method: show its config keys, rules and defaults."),
    json_output: bool = JsonOption,
) -> None:
    """List the benchmark methods with their family, paper and preset budgets.

    With a NAME, list that method's config keys (what `metabench run --set KEY=VALUE` accepts), each
    with its type, allowed values, the paper's 5-way 1-shot value and a line of help. --json prints
    the method cards, config keys and the values each preset changes included.
    """
    from metabench.methods.registry import all_cards, get_card

    try:
        cards = [get_card(name)] if name is not None else all_cards()
    except ValueError as exc:
        raise MetabenchError(str(exc)) from None
    rows = [card.to_json() for card in cards]
    if json_output:
        print_json(rows)
    elif name is not None:
        _print_config(rows[0])
    else:
        _print_methods(rows)


def _print_methods(rows: list[dict]) -> None:
    table = Table("method", "family", "paper", "smoke", "quick", "paper budget")
    for row in rows:
        cells = []
        for preset in ("smoke", "quick", "paper"):
            five, twenty = row["presets"].get(preset), row["presets_20_way"].get(preset)
            same = budget_text(twenty) == budget_text(five)  # a 20-way budget of its own is shown
            cells.append(budget_text(five) + ("" if same else f"\n20-way: {budget_text(twenty)}"))
        label = row["name"] + (f" {TRANSDUCTIVE_MARK}" if row["transductive"] else "")
        family = (
            row["family_name"] if row["family"] == "baseline" else f"{row['family']} {row['family_name']}"
        )
        table.add_row(label, family, row["paper"], *cells)
    console.print(table)
    console.print(
        f"budgets: meta-training steps / test episodes; {TRANSDUCTIVE_MARK} transductive evaluation; "
        "`metabench methods NAME` lists a method's config keys"
    )


def _print_config(row: dict) -> None:
    console.print(f"[bold]{row['name']}[/]: {escape(row['summary'])} ({escape(row['paper'])})")
    table = Table("key (--set KEY=VALUE)", "allowed", "paper (5w1s)", "help")
    for key, item in row["config"].items():
        table.add_row(key, escape(item["rule"]), escape(json.dumps(item["default"])), escape(item["help"]))
    console.print(table)
    for preset, budget in row["presets"].items():
        changes = (
            ", ".join(f"{k}={json.dumps(v)}" for k, v in budget["config"].items()) or "the paper's values"
        )
        console.print(f"[dim]{preset}: {budget_text(budget)}; {escape(changes)}[/dim]")
