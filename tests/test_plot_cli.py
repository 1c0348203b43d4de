"""`metabench plot` and its matplotlib renderer, on the committed run records: what is drawn is the data."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from metabench.cli.app import app
from metabench.config import EpisodeSpec
from metabench.db import open_database
from metabench.errors import MetabenchError
from metabench.leaderboard import (
    Leaderboard,
    build_leaderboards,
    get_run,
    ingest_directory,
    read_record_file,
    save_record,
)
from metabench.leaderboard.figures import BoardChart, board_chart, learning_curves
from metabench.plots import render

RUNS = Path(__file__).resolve().parent.parent / "results" / "runs"
CURVE_RUNS = (
    "protonet-vinyals-5w1s-20261126T095555-e961",
    "maml-vinyals-5w1s-20261126T090037-a251",
    "pretrain-vinyals-5w1s-20261126T090817-5f64",
)
PIXELS_NN = "pixels-nn-vinyals-5w1s-20261126T072815-f751"  # trains nothing: no curve
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding every committed run record."""
    path = tmp_path_factory.mktemp("plot") / "runs.db"
    assert not ingest_directory(open_database(path), RUNS).warnings
    return str(path)


@pytest.fixture(scope="module")
def boards(db: str) -> list[Leaderboard]:
    return build_leaderboards(open_database(db))


def chart_of(boards: list[Leaderboard], protocol: str, ways: int) -> BoardChart:
    [board] = [b for b in boards if (b.setting.protocol, b.setting.ways) == (protocol, ways)]
    return board_chart(board)


def plot(*args: str) -> Result:
    return CliRunner().invoke(app, ["plot", *args])


def one_line_error(result: Result) -> str:
    """The error line of a command that failed as every metabench error does: exit 1, one line."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# The renderer -----------------------------------------------------------------------------------------


def test_curves_figure_draws_every_series_on_a_shared_step_axis(db: str) -> None:
    records = [get_run(open_database(db), run_id) for run_id in CURVE_RUNS]
    panels = learning_curves(records)
    figure = render.curves_figure(panels)
    axes = figure.get_axes()
    assert len(axes) == len(panels) == 3
    for ax, panel in zip(axes, panels, strict=True):
        assert ax.get_title(loc="left") == panel.quantity.title
        assert ax.get_shared_x_axes().joined(ax, axes[0])
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == [series.label for series in panel.series]
        for line, series in zip(lines, panel.series, strict=True):
            assert list(line.get_xdata()) == list(series.steps)
            assert list(line.get_ydata()) == list(series.values)
    # One run, one colour, in every panel.
    assert len({tuple(ax.get_lines()[0].get_color() for ax in axes)}) == 1
    assert axes[-1].get_xlabel() == render.STEP_AXIS
    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [s.label for s in panels[0].series]


def test_board_figure_draws_each_accuracy_with_its_interval_and_the_published_number(
    boards: list[Leaderboard],
) -> None:
    chart = chart_of(boards, "vinyals", 5)
    figure = render.board_figure(chart)
    [ax] = figure.get_axes()
    assert [tick.get_text() for tick in ax.get_yticklabels()] == [bar.label for bar in chart.bars]
    assert ax.get_xlabel() == chart.axis and ax.get_title(loc="left").replace("\n", " ") == chart.title
    containers = {container.get_label(): container for container in ax.containers}
    runs, published = containers[render.RUN_LEGEND], containers[render.PUBLISHED_LEGEND]
    assert list(runs.lines[0].get_xdata()) == [bar.accuracy for bar in chart.bars]
    assert list(runs.lines[0].get_ydata()) == list(range(len(chart.bars)))
    extents = [(segment[0][0], segment[1][0]) for segment in runs.lines[2][0].get_segments()]
    assert extents == pytest.approx(
        [(bar.accuracy - bar.ci95, bar.accuracy + bar.ci95) for bar in chart.bars]
    )
    papers = [bar for bar in chart.bars if bar.published is not None]
    assert 0 < len(papers) < len(chart.bars)  # pretrain and lstm-optimizer have no published number
    assert list(published.lines[0].get_xdata()) == [bar.published for bar in papers]
    extents = [(segment[0][0], segment[1][0]) for segment in published.lines[2][0].get_segments()]
    ci = [bar.published_ci or 0.0 for bar in papers]
    assert extents == pytest.approx(
        [(b.published - c, b.published + c) for b, c in zip(papers, ci, strict=True)]
    )
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == [render.RUN_LEGEND, render.PUBLISHED_LEGEND, render.TRANSDUCTIVE_LEGEND]


def test_references_are_stars_without_interval_and_their_names_are_italic(boards: list[Leaderboard]) -> None:
    chart = chart_of(boards, "lake-runs", 20)
    [ax] = render.board_figure(chart).get_axes()
    [stars] = [line for line in ax.get_lines() if line.get_label() == render.REFERENCE_LEGEND]
    references = [(row, bar) for row, bar in enumerate(chart.bars) if bar.reference]
    assert stars.get_marker() == "*" and len(references) >= 2
    assert list(stars.get_xdata()) == [bar.accuracy for _, bar in references]
    assert list(stars.get_ydata()) == [row for row, _ in references]
    assert {render.REFERENCE_LEGEND} & {container.get_label() for container in ax.containers} == set()
    styles = [tick.get_fontstyle() for tick in ax.get_yticklabels()]
    assert styles == ["italic" if bar.reference else "normal" for bar in chart.bars]


def test_svg_is_the_same_bytes_on_every_render_and_png_is_a_png(boards: list[Leaderboard]) -> None:
    chart = chart_of(boards, "lake-runs", 20)
    first = render.figure_bytes(render.board_figure(chart), "svg")
    assert first == render.figure_bytes(render.board_figure(chart), "svg")
    assert first.startswith(b"<?xml") and b"<dc:date>" not in first
    assert render.figure_bytes(render.board_figure(chart), "png").startswith(PNG_SIGNATURE)


def test_the_format_is_the_suffix() -> None:
    assert render.output_format(Path("a/board.SVG")) == "svg" and render.output_format(Path("c.png")) == "png"
    for name in ("board.pdf", "board"):
        with pytest.raises(ValueError, match=r"a chart is written as \.svg or \.png"):
            render.output_format(Path(name))


def test_without_matplotlib_the_renderer_says_how_to_install_it(
    boards: list[Leaderboard], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` meets when it is absent
    with pytest.raises(MetabenchError) as raised:
        render.board_figure(chart_of(boards, "lake-runs", 20))
    assert str(raised.value) == render.MISSING_MATPLOTLIB


# The command ------------------------------------------------------------------------------------------


def test_plot_board_writes_the_rendered_chart_and_replaces_a_file_only_with_force(
    db: str, boards: list[Leaderboard], tmp_path: Path
) -> None:
    out = tmp_path / "board.svg"
    args = ["board", "--protocol", "lake-runs", "--ways", "20", "--shots", "1", "--out", str(out), "--db", db]
    out.write_text("the user's own file")
    assert "exists; pass --force" in one_line_error(plot(*args))
    assert out.read_text() == "the user's own file"
    result = plot(*args, "--force")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote {out}\n"
    assert out.read_bytes() == render.figure_bytes(
        render.board_figure(chart_of(boards, "lake-runs", 20)), "svg"
    )
    assert [path.name for path in tmp_path.iterdir()] == ["board.svg"]  # no temporary file left behind


def test_plot_curves_writes_a_png(db: str, tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    result = plot("curves", *CURVE_RUNS[:2], "--out", str(out), "--db", db)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(PNG_SIGNATURE) and result.stderr == f"wrote {out}\n"


BOARD = ["board", "--protocol", "vinyals", "--ways", "5", "--shots", "1"]
BAD_ARGS = [
    (["curves", "protonet-vinyals-5w1s-20261126T095555-0000"], "no run 'protonet-vinyals-5w1s-"),
    (["curves", "nope"], "'nope' is not a run id"),
    (["curves", CURVE_RUNS[0], PIXELS_NN], f"run '{PIXELS_NN}' has no learning curve"),
    (["curves", CURVE_RUNS[0], CURVE_RUNS[0]], "is named twice"),
    (
        ["curves", CURVE_RUNS[0], "--out", "{tmp}/missing/curves.svg"],
        "the folder {tmp}/missing does not exist",
    ),
    ([*BOARD, "--out", "{tmp}/board.pdf"], "has suffix '.pdf'; a chart is written as .svg or .png"),
    ([*BOARD, "--out", "{tmp}/board"], "has no suffix"),
    (
        ["board", "--protocol", "vinyals", "--ways", "10", "--shots", "1"],
        "no board for vinyals 10-way 1-shot; ",
    ),
    (["board", "--protocol", "lake", "--ways", "5", "--shots", "1"], "vinyals 5w1s (15 queries per class"),
    ([*BOARD, "--queries", "5"], "no board for vinyals 5-way 1-shot, 5 queries; there are: lake-runs 20w1s"),
    (["board", "--protocol", "omniglot", "--ways", "5", "--shots", "1"], "unknown --protocol 'omniglot'"),
    (["board", "--protocol", "vinyals", "--ways", str(2**63), "--shots", "1"], "--ways must be a positive"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_ARGS, ids=[message.split(";")[0] for _, message in BAD_ARGS]
)
def test_bad_input_is_one_line_exit_1_and_no_file(
    args: list[str], message: str, db: str, tmp_path: Path
) -> None:
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "chart.svg")]
    assert message.replace("{tmp}", str(tmp_path)) in one_line_error(plot(*args, "--db", db))
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_the_command_says_how_to_install_it(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = plot("curves", CURVE_RUNS[0], "--out", str(tmp_path / "curves.svg"), "--db", db)
    assert one_line_error(result) == f"error: {render.MISSING_MATPLOTLIB}"
    assert list(tmp_path.iterdir()) == []


def test_boards_differing_in_queries_are_named_and_narrowed_with_queries(tmp_path: Path) -> None:
    """Two 5-way 1-shot vinyals boards, one with 15 queries per class and one with 5."""
    real = read_record_file(RUNS / f"{CURVE_RUNS[0]}.json")
    spec = replace(real.spec, episode=EpisodeSpec(5, 1, 5))
    fewer = replace(real, run_id=real.run_id[:-4] + "0005", spec=spec, spec_hash=spec.spec_hash())
    db = str(tmp_path / "two.db")
    for record in (real, fewer):
        save_record(open_database(db), record)
    out = tmp_path / "board.png"
    message = one_line_error(plot(*BOARD, "--out", str(out), "--db", db))
    assert "2 boards match vinyals 5-way 1-shot (" in message and "pick one with --queries" in message
    assert "(5 queries per class, 1000 test episodes" in message and "; 15 queries per class, 1000" in message
    assert not out.exists()
    result = plot(*BOARD, "--queries", "5", "--out", str(out), "--db", db)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(PNG_SIGNATURE)
