"""`metabench bench`: performance measurements printed for people (never asserted in tests)."""

from __future__ import annotations

import typer
from rich import box
from rich.table import Table

from metabench.cli.common import JsonOption, console, err_console, one_line_errors, print_json
from metabench.errors import MetabenchError

app = typer.Typer(
    help="Performance benchmarks: the episode sampler (and more to come).", no_args_is_help=True
)


@app.command("sampler")
@one_line_errors
def sampler_command(
    device: str | None = typer.Option(
        None, "--device", help="cpu or cuda (default: cpu, and cuda when present)."
    ),
    protocol: str = typer.Option("vinyals", "--protocol", help="Protocol whose training split is sampled."),
    seconds: float = typer.Option(1.0, "--seconds", min=0.0, help="Minimum time spent on each measurement."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads for torch (default: torch's own choice)."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Episodes per second for 5w1s15q, 20w5s15q and 60w5s5q, and sampling's cost beside a Conv-4 step."""
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
