"""`metabench data`: download, import, inspect and verify Omniglot; thin commands over metabench.data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from metabench.cli.common import JsonOption, console, err_console, one_line_errors, print_json

app = typer.Typer(
    help="Omniglot: download the official zips, import a local copy, show what is installed, verify it. "
    "The data folder is --data, else METABENCH_DATA, else <METABENCH_HOME>/data/omniglot.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

DataOption = typer.Option(
    None, "--data", help="Folder holding the Omniglot zips (default: METABENCH_DATA or the user data dir)."
)


@contextlib.contextmanager
def _decode_progress(label: str) -> Iterator[Any]:
    """A progress bar over decoded images, on stderr so --json output stays clean."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, transient=True, disable=not err_console.is_terminal,
    ) as progress:  # fmt: skip
        task = progress.add_task(label, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


@app.command("download")
@one_line_errors
def download_command(
    dest: Path | None = typer.Option(
        None, "--dest", help="Folder to download into (default: the data folder)."
    ),
    retries: int = typer.Option(
        4, "--retries", min=0, max=100, help="Attempts after a dropped connection (resumed)."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Fetch the official zips (images_background, images_evaluation, all_runs), check, cache them."""
    from metabench.data.download import download_omniglot

    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=err_console, disable=not err_console.is_terminal,
    ) as progress:  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def on_bytes(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, total=total)

        decode = progress.add_task("decoding images", total=None, visible=False)

        def on_images(done: int, total: int) -> None:
            progress.update(decode, completed=done, total=total, visible=True)

        report = download_omniglot(dest, progress=on_bytes, decode_progress=on_images, retries=retries)
    _print_install(report, json_output)


@app.command("import")
@one_line_errors
def import_command(
    path: Path = typer.Argument(..., help="Folder holding the zips, or the unzipped images_* folders."),
    data: Path | None = DataOption,
    json_output: bool = JsonOption,
) -> None:
    """Verify a local copy of Omniglot (official md5 or content check), install it and build the cache."""
    from metabench.data.install import import_data

    with _decode_progress("verifying and decoding") as on_images:
        report = import_data(path, data, progress=on_images)
    _print_install(report, json_output)


def _print_install(report: Any, json_output: bool) -> None:
    if json_output:
        print_json(
            {
                "data_dir": str(report.data_dir),
                "sets": report.sets,
                "cache_dir": str(report.cache_dir),
                "build_seconds": round(report.build_seconds, 3),
                "source_recorded": report.manifest_written,
                "cache_reused": report.cache_reused,
            }
        )
        return
    for name, entry in report.sets.items():
        console.print(
            f"[green]ok[/] {name:10} {escape(entry['file'])}: {entry['images']:,} images, "
            f"verified by {entry['verified_by']}, digest {entry['digest'][:12]}"
        )
    cache = (
        "cache already held this content"
        if report.cache_reused
        else f"cache built in {report.build_seconds:.1f} s"
    )
    console.print(f"installed in {escape(str(report.data_dir))}; {cache}")
    if not report.manifest_written:
        console.print("note: imported in place (or the folder is read-only), so no source record was written")


@app.command("info")
@one_line_errors
def info_command(data: Path | None = DataOption, json_output: bool = JsonOption) -> None:
    """Show what is installed: sets, counts, digests, where each came from, and the cache files."""
    from metabench.data.install import info

    report = info(data)
    if json_output:
        print_json(report)
        return
    table = Table(title=f"Omniglot in {escape(report['data_dir'])}", title_justify="left", box=box.SIMPLE)
    for heading in ("Set", "Alphabets", "Chars", "Images", "Size", "Verified", "Digest"):
        table.add_column(heading, no_wrap=True)
    sources = []
    for name, entry in report["sets"].items():
        if not entry["present"]:
            table.add_row(name, "", "", "", "", "[red]missing[/]", "")
            continue
        if "error" in entry:
            table.add_row(name, "", "", "", _size(entry.get("bytes")), "[red]unreadable[/]", "")
            sources.append(f"[red]{name}: {escape(entry['error'])}[/]")
            continue
        runs = entry.get("runs")
        table.add_row(
            name,
            _count(entry.get("alphabets")),
            f"{runs} runs" if runs else _count(entry.get("characters")),
            _count(entry.get("images")),
            _size(entry.get("bytes")),
            entry.get("verified_by", "-"),
            entry.get("digest", "")[:10],
        )
        if entry.get("source"):
            sources.append(f"{name}: from {escape(entry['source'])} ({entry.get('registered_at', '')})")
    console.print(table)
    for line in sources:
        console.print(f"  {line}")
    totals = report["totals"]
    console.print(
        f"{totals['images']:,} images, {totals['characters']:,} characters, {totals['alphabets']:,} alphabets"
    )
    cache = report["cache"]
    console.print(f"cache: {escape(cache['folder'])} ({cache['status']})")
    if cache["problem"]:
        console.print(f"  [red]{escape(cache['problem'])}[/]")
    for entry in cache["files"]:
        console.print(f"  {escape(entry['name'])}  {_size(entry['bytes'])}")
    transform = cache["transform"]
    console.print(f"  transform v{transform['version']}: {transform['steps']}, ink = 1")
    if report["hint"]:
        console.print(f"[yellow]{escape(report['hint'])}[/]")


@app.command("splits")
@one_line_errors
def splits_command(data: Path | None = DataOption, json_output: bool = JsonOption) -> None:
    """Each protocol's train / val / test classes, characters and alphabets (from the installed data)."""
    import dataclasses

    from metabench.data.protocols import describe_protocols

    summaries = describe_protocols(data)
    if json_output:
        print_json([dataclasses.asdict(summary) for summary in summaries])
        return
    table = Table(title="Omniglot protocols (classes, characters, alphabets)", title_justify="left")
    for heading in ("Protocol", "Train", "Val", "Test", "What it is"):
        table.add_column(heading, no_wrap=heading != "What it is")
    for summary in summaries:
        sides = (summary.train, summary.val, summary.test)
        table.add_row(
            summary.protocol,
            *(f"{s.classes:,} / {s.characters:,} / {s.alphabets}" for s in sides),
            summary.description,
        )
    console.print(table)
    console.print("Rotated copies count as classes in vinyals only; train, val and test share no character.")


@app.command("verify")
@one_line_errors
def verify_command(data: Path | None = DataOption, json_output: bool = JsonOption) -> None:
    """Re-check the installed zips image by image, and mend the cache if it does not match them."""
    from metabench.data.install import verify

    with _decode_progress("verifying") as on_images:
        report = verify(data, progress=on_images)
    if json_output:
        print_json(report)
        return
    for name, entry in report["sets"].items():
        console.print(
            f"[green]ok[/] {name:10} {escape(entry['file'])}: {entry['images']:,} images, "
            f"verified by {entry['verified_by']}, digest {entry['digest'][:12]}"
        )
    console.print(f"cache: {report['cache']['status']}")


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else (value or "")


def _size(value: Any) -> str:
    if not isinstance(value, int):
        return ""
    return f"{value / 1e6:.1f} MB" if value >= 1e5 else f"{value / 1e3:.1f} kB"
