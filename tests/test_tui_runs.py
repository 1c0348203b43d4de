"""The runs screen with REAL `metabench run` subprocesses on the real Omniglot: launch, watch, cancel."""

from __future__ import annotations

import pytest
from test_tui_support import column_text, row_keys, settle, wait_until
from textual.widgets import Button, DataTable, Label, Select

from metabench.db import open_database
from metabench.leaderboard import get_run, list_runs
from metabench.methods.registry import get_card
from metabench.tui.app import create_app
from metabench.tui.run_process import RunRequest, run_command
from metabench.tui.screens.leaderboard import LeaderboardScreen
from metabench.tui.screens.run_form import RunFormScreen
from metabench.tui.screens.runs import RunsScreen
from metabench.tui.widgets.curve_plot import CurvePlots
from metabench.tui.widgets.leaderboard_table import LeaderboardTable
from metabench.tui.widgets.run_monitor import RunMonitor

SIZE = (120, 40)
RUN_TIMEOUT = 240  # a 2-core machine shared with other jobs: generous, never a timing assertion
QUICK_PROTONET_STEPS = get_card("protonet").presets["quick"].meta_steps


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "runs.db"


def monitor_of(app) -> RunMonitor:
    monitors = app.screen.query(RunMonitor)
    assert monitors, "no live run on the runs screen"
    return monitors.first()


@pytest.mark.slow
async def test_a_smoke_run_launched_from_the_form_streams_progress_then_tops_the_leaderboard(db_path):
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")
        assert isinstance(app.screen, RunFormScreen)
        form = app.screen
        await wait_until(pilot, lambda: form.cards is not None, 120, "the method list")
        assert {"protonet", "maml", "pixels-nn"} <= set(form.cards)
        # Choose the method as a user does: open the list, type to jump, confirm.
        form.query_one("#method", Select).focus()
        await pilot.press("enter", *"pixels", "enter")
        await pilot.pause()
        assert form.query_one("#method", Select).value == "pixels-nn"
        # Validation as you type: 2 shots + 19 queries do not fit in 20 drawings per character.
        form.query_one("#queries").focus()
        await pilot.press("home", "ctrl+k", *"19")
        await pilot.press("tab")
        form.query_one("#shots").focus()
        await pilot.press("home", "ctrl+k", "2")
        await pilot.pause()
        assert "shots + queries = 21 but" in str(form.query_one("#queries-error", Label).render())
        assert form.query_one("#launch", Button).disabled
        form.query_one("#queries").focus()
        await pilot.press("home", "ctrl+k", *"15")
        form.query_one("#device", Select).value = "cpu"
        await pilot.pause()
        assert not form.query_one("#launch", Button).disabled
        await pilot.click("#launch")
        await settle(pilot, 1)

        assert isinstance(app.screen, RunsScreen)
        monitor = monitor_of(app)
        await wait_until(pilot, lambda: monitor.snapshot.exited, RUN_TIMEOUT, "the run")
        snapshot = monitor.snapshot
        assert snapshot.status == "finished", snapshot.error
        assert snapshot.events >= 3  # started, testing..., finished
        assert snapshot.test_done == snapshot.test_total == snapshot.episodes == 64
        assert 0.2 < snapshot.final_accuracy < 1.0 and snapshot.final_ci95 > 0
        # The monitor shows the result; the history (polled) lists the run from the database.
        await settle(pilot)
        assert "test " in str(monitor.query_one(".monitor-rate", Label).render())
        assert monitor.query_one(".dismiss-run", Button).display
        stored = list_runs(open_database(db_path))
        assert [(run.run_id, run.status, run.method) for run in stored] == [
            (snapshot.run_id, "finished", "pixels-nn")
        ]
        history = app.screen.query_one("#history", DataTable)
        await wait_until(pilot, lambda: row_keys(history) == [snapshot.run_id], 10, "the history row")
        assert column_text(history, "status") == ["finished"]
        assert column_text(history, "setting") == ["vinyals 5w2s"]

        await pilot.press("3")
        await settle(pilot)
        assert isinstance(app.screen, LeaderboardScreen)
        tables = list(app.screen.query(LeaderboardTable).results(LeaderboardTable))
        assert len(tables) == 1 and tables[0].board.setting.shots == 2
        assert column_text(tables[0], "method") == ["pixels-nn"]
        expected = f"{100 * stored[0].accuracy:.2f} ± {100 * stored[0].ci95:.2f}"
        assert column_text(tables[0], "accuracy") == [expected]


@pytest.mark.slow
async def test_cancelling_a_run_records_it_as_interrupted_and_it_resumes(db_path):
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        request = RunRequest("protonet", preset="quick", device="cpu")
        await app.launch_run(request)
        monitor = monitor_of(app)
        await wait_until(pilot, lambda: monitor.snapshot.step >= 1, RUN_TIMEOUT, "the first progress event")
        total = monitor.snapshot.total_steps
        assert total == QUICK_PROTONET_STEPS and monitor.snapshot.losses
        # ProtoNet's own step metric (its learning rate) is shown beside the loss and accuracy.
        await settle(pilot)
        assert dict(monitor.snapshot.metrics) == {"lr": 3e-3}
        assert "lr 0.003" in str(monitor.query_one(".monitor-metrics", Label).render())
        # Defect 10: the history's row shows the step the panel shows, not the last checkpoint's.
        history = app.screen.query_one("#history", DataTable)
        await wait_until(
            pilot, lambda: column_text(history, "budget")[:1] not in ([], [f"quick 0/{total}"]), 10
        )
        # Live plots with axes, of the numbers the events carry, saying they are running means.
        plots = monitor.query_one(CurvePlots)
        snapshot = monitor.snapshot
        loss = plots.panels[0]
        assert loss.quantity.title == "Training loss (mean of the last 20 steps)"
        assert list(zip(loss.series[0].steps, loss.series[0].values, strict=True)) == list(snapshot.losses)
        assert "means of the last 20 steps" in str(monitor.query_one(".monitor-values", Label).render())
        run_id = monitor.snapshot.run_id
        monitor.query_one(".cancel-run", Button).focus()
        await pilot.press("x")
        await wait_until(pilot, lambda: monitor.snapshot.exited, RUN_TIMEOUT, "the interruption")
        assert monitor.snapshot.status == "interrupted" and monitor.snapshot.resumable
        record = get_run(open_database(db_path), run_id)
        assert record.status == "interrupted" and record.resumable
        stopped_at = record.steps_done
        assert 1 <= stopped_at < total
        assert monitor.query_one(".resume-run", Button).display
        assert app.screen.focused is monitor.query_one(".resume-run", Button)  # defect 2: Cancel hid, focused

        # Defect 3: with the history focused on a run that cannot resume (a finished one), `u` resumes
        # the run just interrupted, at once shown as resuming, not "cancelling" at the old step.
        await app.launch_run(RunRequest("pixels-nn", device="cpu"))
        finished = app.screen.monitors()[0]
        await wait_until(pilot, lambda: finished.snapshot.exited, RUN_TIMEOUT, "the pixels-nn run")
        history = app.screen.query_one("#history", DataTable)
        await wait_until(pilot, lambda: history.row_count == 2, 10, "both runs in the history")
        history.focus()
        history.move_cursor(row=row_keys(history).index(finished.snapshot.run_id))
        await pilot.press("u")
        assert monitor.snapshot.phase == "resuming" and monitor.snapshot.step == 0
        assert str(monitor.query_one(".monitor-status", Label).render()) == "resuming"
        await wait_until(
            pilot, lambda: monitor.running and monitor.snapshot.step > stopped_at, RUN_TIMEOUT, "resume"
        )
        assert get_run(open_database(db_path), run_id).status == "running"
        await pilot.press("x")
        await wait_until(pilot, lambda: monitor.snapshot.exited, RUN_TIMEOUT, "the second interruption")
        # Resumed from the history, the run continues in its own panel: no second panel offers Resume.
        await settle(pilot)
        history.focus()
        history.move_cursor(row=row_keys(history).index(run_id))
        await pilot.press("u")
        assert [m.snapshot.run_id for m in app.screen.monitors() if m.snapshot.run_id == run_id] == [run_id]
        await wait_until(pilot, lambda: monitor.running, RUN_TIMEOUT, "the resume from the history")
        await pilot.press("x")
        await wait_until(pilot, lambda: monitor.snapshot.exited, RUN_TIMEOUT, "the third interruption")
        assert monitor.snapshot.status == "interrupted"

        # Resume with the panel's button: the runner continues from the checkpoint, not from step 0.
        stopped_at = get_run(open_database(db_path), run_id).steps_done
        await pilot.click(f"#{monitor.id} .resume-run")
        await wait_until(
            pilot, lambda: monitor.running and monitor.snapshot.step > stopped_at, RUN_TIMEOUT, "resume"
        )
        assert get_run(open_database(db_path), run_id).status == "running"
        await pilot.press("x")
        await wait_until(pilot, lambda: monitor.snapshot.exited, RUN_TIMEOUT, "the second interruption")
        record = get_run(open_database(db_path), run_id)
        assert record.status == "interrupted" and record.steps_done > stopped_at


async def test_a_run_the_runner_refuses_shows_its_one_line_error(db_path):
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # Valid for the form, impossible for the data: the lake protocol has 659 test characters.
        await app.launch_run(RunRequest("pixels-nn", protocol="lake", ways=700, device="cpu"))
        monitor = monitor_of(app)
        await wait_until(pilot, lambda: monitor.snapshot.exited, RUN_TIMEOUT, "the failure")
        assert monitor.snapshot.status == "failed"
        error = monitor.snapshot.error
        assert "700" in error and "\n" not in error
        assert str(monitor.query_one(".monitor-error", Label).render()) == f"error: {error}"
        assert not monitor.query_one(".resume-run", Button).display


async def test_the_history_follows_runs_started_elsewhere(db_path, tmp_path):
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        history = app.screen.query_one("#history", DataTable)
        assert history.row_count == 0
        # Another terminal runs a benchmark on the same database; the screen polls and shows it.
        import subprocess
        import sys

        process = subprocess.Popen(
            [sys.executable, "-m", "metabench", "run", "pixels-nn", "--preset", "smoke", "--device", "cpu",
             "--events", "none", "--db", str(db_path), "--results", str(tmp_path / "results")],
        )  # fmt: skip
        try:
            await wait_until(pilot, lambda: history.row_count == 1, RUN_TIMEOUT, "the polled history")
            await wait_until(
                pilot, lambda: column_text(history, "status") == ["finished"], RUN_TIMEOUT, "finish"
            )
        finally:
            assert process.wait(timeout=RUN_TIMEOUT) == 0
        assert column_text(history, "method") == ["pixels-nn"]


async def test_defects_1_2_dismissing_the_focused_panel_never_leaves_the_focus_on_a_removed_widget(
    db_path,
):
    # Two ended runs; Tab to the lower panel's Dismiss, then `d` removed it with the focus on it: the
    # footer vanished and no key worked, ctrl+q included.
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        refused = RunRequest("pixels-nn", protocol="lake-runs", ways=5, device="cpu")
        await app.launch_run(refused)
        await app.launch_run(refused)
        screen = app.screen
        assert screen.focused is screen.query_one("#history")  # a run starting takes no focus away
        monitors = screen.monitors()
        await wait_until(pilot, lambda: all(m.snapshot.exited for m in monitors), RUN_TIMEOUT, "two refusals")
        await pilot.pause()
        await pilot.press("tab", "tab")
        assert screen.focused is monitors[1].query_one(".dismiss-run", Button)
        await pilot.press("d")
        await pilot.pause()
        assert not screen.monitors()
        assert screen.focused is screen.query_one("#history") and screen.focused.is_attached
        assert {"x", "u", "d", "n", "q"} <= set(screen.active_bindings)  # the keys work again
        await pilot.press("3")
        assert isinstance(app.screen, LeaderboardScreen)


async def test_defect_8_the_form_refuses_what_the_run_would_refuse(db_path):
    # lake-runs tests on Lake's fixed 20-way 1-shot tasks: the form accepted 5-way 1-shot, which the
    # run then refused; and a method's own options are checked against its card as they are typed.
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        requests = []
        form = RunFormScreen(method="protonet")
        app.push_screen(form, requests.append)
        await wait_until(pilot, lambda: form.cards is not None, 120, "the method list")
        form.query_one("#protocol", Select).value = "lake-runs"
        await pilot.pause()
        assert form.query_one("#launch", Button).disabled
        assert "protocol lake-runs tests on fixed 20w1s tasks" in str(
            form.query_one("#ways-error", Label).render()
        )
        for field, value in (("ways", "20"), ("queries", "1")):
            form.query_one(f"#{field}").value = value
        await pilot.pause()
        assert not form.query_one("#launch", Button).disabled
        form.query_one("#options").value = "lr=0"
        await pilot.pause()
        assert "lr must be positive" in str(form.query_one("#options-error", Label).render())
        assert form.query_one("#launch", Button).disabled
        form.query_one("#options").value = "lr=0.01"
        await pilot.pause()
        assert form.validate() == {}
        await pilot.press("ctrl+s")
        assert requests == [RunRequest("protonet", "lake-runs", 20, 1, 1, options=(("lr", "0.01"),))]
        assert run_command(requests[0], db_path)[-6:-4] == ["--set", "lr=0.01"]
