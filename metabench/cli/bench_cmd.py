"""`metabench bench`: performance measurements printed for people (never asserted in tests)."""

from __future__ import annotations

import dataclasses
import math

import typer
from rich import box
from rich.table import Table

from metabench.cli.common import JsonOption, console, err_console, one_line_errors, print_json
from metabench.config import BENCH_METHODS
from metabench.errors import MetabenchError

app = typer.Typer(
    help="Performance benchmarks: the episode sampler, the methods' meta-training throughput and the "
    "TUI's start-up.",
    no_args_is_help=True,
)


@app.command("sampler")
@one_line_errors
def sampler_command(
    device: str | None = typer.Option(
        None, "--device", help="cpu or cuda (default: cpu, and cuda when present)."
    ),
    protocol: str = typer.Option("vinyals", "--protocol", help="Protocol whose training split is sampled."),
    seconds: float = typer.Option(
        1.0, "--seconds", min=0.0, max=600.0, help="Minimum time spent on each measurement (at most 600)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, max=1024, help="CPU threads for torch (default: torch's own choice)."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Episodes per second for 5w1s15q, 20w5s15q and 60w5s5q, and sampling's cost beside a Conv-4 step."""
    if not math.isfinite(seconds):  # NaN passes a range check (every comparison with it is false)
        raise MetabenchError(f"--seconds must be a number of seconds from 0 to 600, got {seconds}")
    import torch

    from metabench.bench.sampler import available_devices, bench_sampler
    from metabench.data.protocols import load_protocol

    if threads:
        torch.set_num_threads(threads)

    devices = [device] if device else available_devices()
    if device and device not in ("cpu", "cuda"):
        raise MetabenchError(f"unknown device {device!r}; use cpu or cuda")
    results = []
    for name in devices:
        if not json_output:
            err_console.print(f"measuring on {name} ...")
        data = load_protocol(protocol, name)
        results += bench_sampler(data.train, min_seconds=seconds)
    if json_output:
        print_json([r.to_dict() for r in results])
        return
    title = f"Episode sampler on the {protocol} training split ({torch.get_num_threads()} CPU threads)"
    table = Table(title=title, title_justify="left", box=box.SIMPLE, pad_edge=False)
    headings = ("Device", "Setting", "Tasks", "Images", "Episodes/s", "Sample", "Conv-4", "Cost")
    for heading in headings:
        table.add_column(
            heading, justify="left" if heading in ("Device", "Setting") else "right", no_wrap=True
        )
    for r in results:
        table.add_row(
            r.device,
            r.setting,
            str(r.tasks_per_batch),
            f"{r.images_per_batch:,}",
            f"{r.episodes_per_s:,.0f}",
            f"{r.sample_ms:.2f}",
            f"{r.conv4_step_ms:.1f}",
            f"{r.sampling_cost_pct:.2f}%",
        )
    console.print(table)
    console.print(
        "Tasks: tasks drawn per call (the meta-batch). Sample: ms to draw them. Conv-4: ms for one "
        "forward/backward of a Conv-4 on the same batch. Cost: Sample / Conv-4 (target: under 2%)."
    )


@app.command("methods")
@one_line_errors
def methods_command(
    methods: list[str] | None = typer.Argument(
        None, help=f"Methods to measure (default: {' '.join(BENCH_METHODS)})."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu or cuda (default: cpu, and cuda when present)."
    ),
    ways: int = typer.Option(5, "--ways", min=2, max=1000, help="Classes per task."),
    shots: int = typer.Option(1, "--shots", min=1, max=19, help="Support examples per class."),
    meta_batch: int | None = typer.Option(
        None, "--meta-batch", min=1, max=4096, help="Tasks per step for every method (default: each paper's)."
    ),
    train_queries: int | None = typer.Option(
        None,
        "--train-queries",
        min=1,
        max=19,
        help="Queries per class of the training tasks (default: each paper's; MAML's auto depends on it).",
    ),
    rounds: int = typer.Option(
        3, "--rounds", min=1, max=100, help="Alternating timing rounds; the median counts."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Meta-training tasks/s of each method, vectorized (torch.func vmap) beside a per-task Python loop."""
    from metabench.bench.throughput import measure_throughput
    from metabench.config import EpisodeSpec

    if device and device not in ("cpu", "cuda"):
        raise MetabenchError(f"unknown device {device!r}; use cpu or cuda")
    from metabench.methods.loader import get_method

    try:
        for name in methods or BENCH_METHODS:
            get_method(name)  # refuse an unknown name before minutes of loading and timing
        if not json_output:
            err_console.print("measuring meta-training throughput (a minute or two on a CPU) ...")
        rows = measure_throughput(
            methods or BENCH_METHODS,
            devices=[device] if device else None,
            episode=EpisodeSpec(ways, shots, 1),
            meta_batch=meta_batch,
            train_queries=train_queries,
            rounds=rounds,
        )
    except ValueError as exc:
        raise MetabenchError(str(exc)) from None
    if json_output:
        print_json([dataclasses.asdict(row) for row in rows])
        return
    table = Table(title="Meta-training throughput", title_justify="left", box=box.SIMPLE, pad_edge=False)
    for heading in (
        "Method",
        "Device",
        "Setting",
        "Tasks/step",
        "Vectorized tasks/s",
        "Loop tasks/s",
        "Speedup",
        "auto takes",
    ):
        table.add_column(
            heading, justify="left" if heading in ("Method", "Device", "Setting", "auto takes") else "right"
        )
    for row in rows:
        table.add_row(
            row.method,
            row.device,
            row.setting,
            str(row.tasks_per_step),
            f"{row.vectorized_tasks_per_s:,.1f}",
            f"{row.loop_tasks_per_s:,.1f}",
            f"{row.speedup:.2f}x",
            row.auto or "-",
        )
    console.print(table)


@app.command("tui")
@one_line_errors
def tui_command(
    repeat: int = typer.Option(
        5, "--repeat", min=1, max=100, help="Launches of each program; the median counts."
    ),
    size: str = typer.Option("120x40", "--size", help="Terminal size, COLUMNSxLINES."),
    json_output: bool = JsonOption,
) -> None:
    """Seconds from launching `metabench tui` to its first frame, in a pseudo-terminal, beside the smallest
    Textual app started the same way (the framework's floor on this machine).
    """
    from metabench.bench.tui_startup import measure_startup, parse_size

    try:
        columns_lines = parse_size(size)
    except ValueError as exc:
        raise MetabenchError(str(exc)) from None
    if not json_output:
        err_console.print(f"launching each program {repeat} times at {size} ...")
    try:
        results = measure_startup(repeat, columns_lines)
    except (TimeoutError, RuntimeError) as exc:
        raise MetabenchError(str(exc)) from None
    if json_output:
        print_json([r.to_dict() for r in results])
        return
    table = Table(title="Launch to first frame", title_justify="left", box=box.SIMPLE, pad_edge=False)
    for heading in ("Program", "Launches", "Median s", "Min s", "Max s"):
        table.add_column(heading, justify="left" if heading == "Program" else "right")
    for r in results:
        seconds = (r.median, min(r.seconds), max(r.seconds))
        table.add_row(r.program, str(len(r.seconds)), *(f"{s:.2f}" for s in seconds))
    console.print(table)
    tui, baseline = results
    console.print(
        f"metabench tui: {tui.median:.2f} s to its first frame (target: under 1 s), "
        f"{tui.median / baseline.median:.1f}x the smallest Textual app on this machine."
    )
