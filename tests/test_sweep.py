"""Sweeps: the file, its one-line errors, the plan, and real local sweeps (twice, failing, killed, resumed).

The sweeps run real `metabench run` processes on the real Omniglot: smoke runs of pixels-nn (no
training) and pretrain (one step), two at a time.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metabench.cli.app import app
from metabench.cli.run_cmd import PlainProgressSink
from metabench.cli.sweep_cmd import PlainSweepProgress
from metabench.config import EpisodeSpec, RunSpec
from metabench.db import open_database
from metabench.leaderboard import ingest_directory
from metabench.leaderboard.store import list_runs
from metabench.runner import events
from metabench.sweep.attempts import deciding_attempts, log_failure
from metabench.sweep.executor import Job, Outcome, ProgressUpdate, RunWatcher
from metabench.sweep.local import LocalExecutor, gpu_ids
from metabench.sweep.lock import lock_path, sweep_lock
from metabench.sweep.plan import plan_sweep, recorded_hash
from metabench.sweep.sweep_file import load_sweep, parse_sweep

REPO = Path(__file__).resolve().parent.parent
SWEEPS = REPO / "sweeps"

# 2 methods x 2 settings x 2 seeds of smoke runs, and one run the data refuses at run time (the lake
# protocol's validation split has 151 classes): spec_rules cannot know it, the run fails in a second.
SMOKE_GRID = """\
[sweep]
name = "smoke-grid"
methods = ["pixels-nn", "pretrain"]
shapes = ["5w1s", "5w2s"]
seeds = [0, 1]
presets = "smoke"
device = "cpu"

[budget.pretrain]
meta_steps = 1
eval_episodes = 8

[[grid]]
methods = ["pixels-nn"]
protocols = ["lake"]
shapes = ["200w1s"]
seeds = [0]
"""


def sweep_file(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def finished_rows(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT run_id, spec_hash, method FROM runs WHERE status = 'finished' ORDER BY run_id"
        ).fetchall()


# --- the file ----------------------------------------------------------------------------------------


def test_the_example_sweeps_parse_into_their_grids() -> None:
    quick = load_sweep(SWEEPS / "quick-benchmark.toml")
    specs = quick.specs()
    assert len(specs) == 2 * len({spec.method for spec in specs}) and len(specs) >= 30
    assert {(s.protocol, s.episode.label, s.preset, s.seed) for s in specs} == {
        ("vinyals", "5w1s", "quick", 0),
        ("vinyals", "20w1s", "quick", 0),
    }
    seeds = load_sweep(SWEEPS / "seeds-quick.toml").specs()
    assert [(s.method, s.seed) for s in seeds[:4]] == [
        ("protonet", 0),
        ("maml", 0),
        ("pretrain", 0),
        ("protonet", 1),
    ]
    assert len(seeds) == 9
    paper = load_sweep(SWEEPS / "paper-3-seeds.toml").specs()
    assert len(paper) == len(specs) // 2 * 4 * 3 and {s.preset for s in paper} == {"paper"}


def test_grids_inherit_from_sweep_and_per_method_tables_apply() -> None:
    sweep = parse_sweep(
        """
[sweep]
methods = ["maml", "protonet"]
seeds = 3
meta_steps = 10

[[grid]]
methods = ["protonet"]
protocols = ["lake-runs"]
shapes = ["20w1s"]
queries = 1

[overrides.maml]
inner_steps = 2
strategy = "loop"

[budget.protonet]
eval_episodes = 5
""",
        Path("s.toml"),
    )
    maml, protonet, lake = sweep.specs()
    assert sweep.name == "s" and maml.overrides == (("inner_steps", "2"), ("strategy", "loop"))
    assert (maml.meta_steps, maml.eval_episodes, maml.seed) == (10, None, 3)
    assert (protonet.meta_steps, protonet.eval_episodes, protonet.overrides) == (10, 5, ())
    assert (lake.protocol, lake.episode, lake.seed, lake.meta_steps) == (
        "lake-runs",
        EpisodeSpec(20, 1, 1),
        3,
        10,
    )


MALFORMED = [
    ('[sweep]\nmethods = ["protonet",\n  "maml"\nseeds = [0]\n', 4, "invalid TOML: unclosed array"),
    ('[sweep]\nmethods = [\n  "protonet",\n  "protnet",\n]\n', 4, "unknown method 'protnet'"),
    (
        '[sweep]\nmethods = ["protonet"]\npreset = "quick"\n',
        3,
        "unknown key `preset` in [sweep]; did you mean `presets`?",
    ),
    (
        '[sweep]\nmethods = ["protonet"]\nprotocols = ["vinyals", "imagenet"]\n',
        3,
        "unknown protocol 'imagenet'",
    ),
    ('[sweep]\nmethods = ["protonet"]\nshapes = ["5way"]\n', 3, "is not N-way K-shot"),
    ('[sweep]\nmethods = ["protonet"]\nshapes = ["5w1s",\n "5w10s"]\n', 4, "shots + queries = 25"),
    ('[sweep]\nmethods = ["protonet"]\nshapes = ["5w10s"]\nqueries = 15\n', 4, "shots + queries = 25"),
    (
        '[sweep]\nmethods = ["pixels-nn"]\n\n[[grid]]\nprotocols = ["lake-runs"]\nshapes = ["20w1s"]\n',
        6,
        "--queries 1",
    ),
    ('[sweep]\nmethods = ["maml"]\n[overrides.maml]\ninner_steps = 1\nbogus = 2\n', 5, "unknown key 'bogus'"),
    (
        '[sweep]\nmethods = ["maml++"]\n[overrides."maml++"]\ninner_lr = "fast"\n',
        4,
        "expected a value of type float",
    ),
    ('[sweep]\nmethods = ["maml"]\n[overrides.protonet]\nlr = 1\n', 3, "names a method no grid runs"),
    (
        '[sweep]\nmethods = ["maml"]\n[budget.maml]\nmeta_steps = -1\n',
        4,
        "`meta_steps` must be a whole number >= 0",
    ),
    ('[sweep]\nmethods = ["maml"]\nseeds = [0,\n -1]\n', 4, "`seeds` must be a whole number >= 0"),
    ('[sweep]\nmethods = ["maml", "maml"]\n', 2, "lists 'maml' twice"),
    ('methods = ["maml"]\n', 1, "belongs in the [sweep] table"),
    ("[sweep]\nseeds = [1]\n", 1, "[sweep] has no `methods`"),
    ('[sweep]\nmethods = ["maml"]\n[[grid]]\nseeds = [1]\n[[grid]]\nname = "x"\n', 6, "in [[grid]] number 2"),
    ('[sweep]\nmethods = ["maml"]\ndevice = "tpu"\n', 3, "`device` must be one of auto, cpu, cuda"),
]


@pytest.mark.parametrize(("text", "line", "message"), MALFORMED)
def test_every_problem_is_one_line_naming_its_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_sweep(text, Path("bad.toml"))
    error = str(caught.value)
    assert "\n" not in error and error.startswith(f"bad.toml:{line}: ") and message in error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sweep\nmethods = 1\n", "bad.toml:1: invalid TOML"),
        ('[sweep]\nmethods = ["protnet"]\n', "bad.toml:2: unknown method 'protnet'"),
        ('[sweep]\nmethods = ["maml"]\n\n[overrides.maml]\nlr = 1\n', "bad.toml:5: maml: unknown key 'lr'"),
    ],
)
def test_the_cli_refuses_a_bad_file_in_one_line_before_anything_runs(
    tmp_path: Path, text: str, message: str
) -> None:
    path = sweep_file(tmp_path, text, "bad.toml")
    db = tmp_path / "runs.db"
    result = CliRunner().invoke(app, ["sweep", str(path), "--db", str(db)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {tmp_path}/{message}")
    assert not db.exists()  # refused before the database was even opened


def test_the_cli_refuses_bad_options(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, '[sweep]\nmethods = ["pixels-nn"]\n')
    for args, message in (
        (["--executor", "ssh"], "unknown --executor 'ssh'; choose local or slurm"),
        (["--events", "xml"], "unknown --events 'xml'"),
        (["--workers", "0"], "--workers must be at least 1"),
    ):
        result = CliRunner().invoke(app, ["sweep", str(path), *args])
        assert result.exit_code == 1 and message in result.stderr, result.stderr


def test_reading_checking_and_planning_a_sweep_loads_neither_torch_nor_a_ui_library(tmp_path: Path) -> None:
    code = (
        "import sys; from metabench.db import open_database; "
        "from metabench.sweep import engine, local, plan, sweep_file; "
        f"sweep = sweep_file.load_sweep({str(SWEEPS / 'quick-benchmark.toml')!r}); "
        f"assert plan.plan_sweep(sweep, open_database({str(tmp_path / 'runs.db')!r})).jobs(False); "
        "print(sorted(m for m in ('torch', 'textual', 'typer', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the plan ----------------------------------------------------------------------------------------


def test_committed_records_count_as_done_after_ingest(tmp_path: Path) -> None:
    """The committed sweep: all three seeds of seeds-quick are in results/runs/, so nothing remains."""
    db = open_database(tmp_path / "runs.db")
    ingest_directory(db, REPO / "results" / "runs")
    plan = plan_sweep(load_sweep(SWEEPS / "seeds-quick.toml"), db)
    assert [(run.spec.seed, run.state) for run in plan.runs] == [
        (seed, "done") for seed in (0, 1, 2) for _ in "abc"
    ]
    assert not list(plan.jobs())
    # Lake's fixed runs cap the test episodes as the runner does: recorded hashes match there too.
    lake = RunSpec("protonet", "lake-runs", EpisodeSpec(20, 1, 1), "quick")
    assert recorded_hash(lake) in deciding_attempts(db)


def test_plan_states_follow_the_latest_attempt(tmp_path: Path) -> None:
    db = open_database(tmp_path / "runs.db")
    ingest_directory(db, REPO / "results" / "runs")
    sweep = parse_sweep(
        '[sweep]\nmethods = ["protonet", "maml", "pretrain", "anil"]\n\n[[grid]]\nmethods = ["maml"]\n',
        Path("s.toml"),
    )
    (protonet, maml, pretrain, anil) = (recorded_hash(spec) for spec in sweep.specs()[:4])
    runs = dict(db.execute("SELECT spec_hash, run_id FROM runs").fetchall())
    with db.conn:
        db.conn.execute("UPDATE runs SET status = 'interrupted' WHERE spec_hash = ?", [maml])
        db.conn.execute(
            "UPDATE runs SET status = 'running', owner_pid = ? WHERE spec_hash = ?", [os.getpid(), pretrain]
        )
        db.conn.execute(
            "UPDATE runs SET status = 'failed', error = 'loss became nan' WHERE spec_hash = ?", [anil]
        )
    log_failure(db, protonet, sweep.specs()[0], None, "no Omniglot data")  # a done run stays done

    plan = plan_sweep(sweep, db)
    assert [(run.spec.method, run.state) for run in plan.runs] == [
        ("protonet", "done"),
        ("maml", "interrupted"),
        ("pretrain", "running"),
        ("anil", "failed"),
    ]  # the second grid's maml is the same run: planned once
    assert plan.runs[3].error == "loss became nan"
    assert plan.jobs() == [Job(sweep.specs()[1], runs[maml])]  # resumed, not restarted
    assert plan.jobs(retry_failed=True) == [Job(sweep.specs()[1], runs[maml]), Job(sweep.specs()[3], None)]

    # A resume refused (a damaged checkpoint) is logged after the run began: now the run counts as failed.
    log_failure(db, maml, sweep.specs()[1], runs[maml], "checkpoint damaged")
    with db.conn:  # and a run whose process is gone can be taken over
        db.conn.execute("UPDATE runs SET owner_pid = 2147483647 WHERE spec_hash = ?", [pretrain])
    states = {run.spec.method: (run.state, run.error) for run in plan_sweep(sweep, db).runs}
    assert states["maml"] == ("failed", "checkpoint damaged") and states["pretrain"] == ("interrupted", None)


def test_a_job_is_the_metabench_run_command_line(tmp_path: Path) -> None:
    spec = RunSpec(
        "maml", "lake", EpisodeSpec(20, 5, 10), "smoke", 4, None, 2, "cpu", (("inner_steps", "3"),)
    )
    argv = Job(spec, None).argv(tmp_path / "x.db", tmp_path / "results")
    assert argv[:4] == [sys.executable, "-m", "metabench", "run"]
    assert " ".join(argv[4:]) == (
        f"maml --protocol lake --ways 20 --shots 5 --queries 10 --preset smoke --seed 2 --device cpu "
        f"--meta-steps 4 --set inner_steps=3 --events jsonl --db {tmp_path}/x.db --results {tmp_path}/results"
    )
    resume = Job(spec, "maml-lake-20w5s-20260101T000000-abcd").argv(None, tmp_path)
    assert resume[4:] == [
        "--resume",
        "maml-lake-20w5s-20260101T000000-abcd",
        "--events",
        "jsonl",
        "--results",
        str(tmp_path),
    ]


def test_the_watcher_turns_events_and_exit_codes_into_outcomes() -> None:
    job = Job(RunSpec("protonet"), None)
    watcher = RunWatcher(job, "cpu 0")
    assert watcher.feed("not json") is None and not watcher.started
    update = watcher.feed('{"event":"progress","run_id":"r","step":3,"total_steps":9}')
    assert update == ProgressUpdate(job, "training", run_id="r", step=3, total_steps=9, where="cpu 0")
    update = watcher.feed(
        '{"event":"testing","run_id":"r","step":9,"total_steps":9,"episodes_done":4,"episodes":8}'
    )
    assert (update.phase, update.episodes_done, update.episodes) == ("testing", 4, 8)
    assert watcher.feed('{"event":"finished","run_id":"r","accuracy":0.5}') is None
    assert watcher.outcome(0, "", stopped=False) == Outcome(job, "finished", "r", 0.5, None)

    refused = RunWatcher(job)
    refused.feed('{"event":"failed","run_id":null,"error":"--ways 200\\n exceeds"}')
    assert refused.outcome(1, "error: x", stopped=False) == Outcome(
        job, "failed", None, None, "--ways 200 exceeds"
    )
    silent = RunWatcher(job)
    assert silent.outcome(-9, "", stopped=False).error == "metabench run was killed by SIGKILL"
    assert silent.outcome(1, "warning: w\nerror: no data here\n", stopped=False).error == "no data here"
    assert silent.outcome(-15, "", stopped=True).status == "interrupted"


def test_workers_share_the_cores_and_take_turns_on_the_gpus(tmp_path: Path) -> None:
    cpu = LocalExecutor(None, tmp_path, 3, gpus=[], cores=8)
    env, where = cpu.worker_environment(1)
    assert (env["OMP_NUM_THREADS"], where) == ("2", "cpu 1") and "CUDA_VISIBLE_DEVICES" not in env
    assert cpu.description == "3 at once on the CPU, 2 threads each"
    assert LocalExecutor(None, tmp_path, None, gpus=[], cores=2).workers == 1
    gpus = LocalExecutor(None, tmp_path, 4, gpus=["2", "3"], cores=16)
    pinned = [gpus.worker_environment(slot)[0]["CUDA_VISIBLE_DEVICES"] for slot in range(4)]
    assert pinned == ["2", "3", "2", "3"] and gpus.description == "4 at once on GPU 2, 3"
    assert LocalExecutor(None, tmp_path, None, gpus=["0", "1"], cores=16).workers == 2
    # A sweep given GPUs 4 and 6 of a machine pins its children to those, not to 0 and 1.
    assert gpu_ids(2, "4,6") == ["4", "6"] and gpu_ids(2, None) == ["0", "1"] and gpu_ids(0, "3") == []


def test_plain_progress_writes_at_a_steady_interval() -> None:
    now = [0.0]
    lines: list[str] = []
    display = PlainSweepProgress("s", 2, interval=30, clock=lambda: now[0], write=lines.append)
    job = Job(RunSpec("maml", seed=1), None)
    display.update(ProgressUpdate(job, "training", step=5, total_steps=100))
    now[0] = 31
    display.update(ProgressUpdate(job, "training", step=40, total_steps=100))
    display.update(ProgressUpdate(job, "training", step=41, total_steps=100))
    display.update(ProgressUpdate(job, "ended", outcome=Outcome(job, "failed", "r", None, "loss became nan")))
    assert lines == [
        "sweep s: 0/2 done; running: maml vinyals 5w1s quick seed 1 step 40/100",
        "[1/2] failed maml vinyals 5w1s quick seed 1: loss became nan",
    ]


def test_a_run_off_a_terminal_prints_plain_lines_at_a_steady_interval(capsys: pytest.CaptureFixture) -> None:
    now = [0.0]
    sink = PlainProgressSink(interval=30, clock=lambda: now[0])
    sink.emit(events.Started("r", "maml", "vinyals", "5w1s", 15, "quick", 0, "CPU", 0, 100, 10, True, False))
    for step in (1, 2, 3):
        now[0] = 20.0 * step
        sink.emit(events.Progress("r", step, 100, 0.5, 0.75, 2.0, 49.0))
    sink.emit(events.Testing("r", 100, 100, 0, 10, None))
    sink.emit(events.Finished("r", 100, 100, 0.9, 0.01, 10, True, 50.0, 60.0, None))
    assert capsys.readouterr().err.splitlines() == [
        "run r: maml on vinyals 5w1s (quick, 100 steps, 10 test episodes) on CPU",
        "step 1/100 (1%): loss 0.500  acc 75.0%  2.0 steps/s  eta 49s",
        "step 3/100 (3%): loss 0.500  acc 75.0%  2.0 steps/s  eta 49s",
        "testing: 0/10 episodes",
        "accuracy 90.00% ± 1.00 over 10 test episodes (transductive evaluation); trained in 50.0s",
    ]


def test_a_second_sweep_on_one_database_is_refused_until_the_first_ends(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, '[sweep]\nmethods = ["pixels-nn"]\npresets = "smoke"\ndevice = "cpu"\n')
    db = tmp_path / "runs.db"
    hold = "import sys, time\nfrom pathlib import Path\nfrom metabench.sweep.lock import sweep_lock\n"
    hold += "with sweep_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(120)\n"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        args = ["sweep", str(path), "--db", str(db), "--events", "none"]
        refused = CliRunner().invoke(app, args)
        assert refused.exit_code == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
        assert refused.stderr.startswith(f"error: another sweep (pid {holder.pid}, started ")
        assert f"is running on {db}; wait for it to end, or give this sweep its own --db" in refused.stderr
        assert list_runs(open_database(db)) == []
        dry = CliRunner().invoke(app, [*args, "--dry-run"])  # a dry run only reads: it plans as ever
        assert dry.exit_code == 0 and "1 runs: 1 to run" in dry.stdout, dry.output
    finally:
        holder.kill()  # SIGKILL: no chance to unlock; the kernel frees the lock with the process
        holder.wait()
    with sweep_lock(db):
        assert lock_path(db).read_text().startswith(f"pid {os.getpid()}, started ")


def test_a_lock_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, '[sweep]\nmethods = ["pixels-nn"]\npresets = "smoke"\n')
    db = tmp_path / "runs.db"
    lock_path(db).mkdir()  # a folder where the lock file goes
    result = CliRunner().invoke(app, ["sweep", str(path), "--db", str(db)])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"error: cannot open the sweep lock {lock_path(db)} (Is a directory)" in result.stderr


# --- real sweeps -------------------------------------------------------------------------------------


def test_a_local_sweep_records_each_run_once_fails_alone_and_resumes_as_a_no_op(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, SMOKE_GRID)
    db, results = tmp_path / "runs.db", tmp_path / "results"
    args = ["sweep", str(path), "--db", str(db), "--results", str(results), "--workers", "2"]
    runner = CliRunner()

    first = runner.invoke(app, args)
    assert first.exit_code == 1, first.stderr  # 1: a run failed; the eight others finished
    rows = finished_rows(db)
    assert len(rows) == 8 and len({spec_hash for _, spec_hash, _ in rows}) == 8
    assert {method for _, _, method in rows} == {"pixels-nn", "pretrain"}
    assert all((results / "runs" / f"{run_id}.json").is_file() for run_id, _, _ in rows)
    assert "sweep smoke-grid: 9 of 9 runs to do, 2 at once on the CPU, 1 thread each" in first.stderr
    assert "failed pixels-nn lake 200w1s smoke seed 0: --ways 200 exceeds the 151 classes" in first.stderr
    assert "finished 8, failed 1, interrupted 0, skipped 0" in first.stdout
    [failure] = open_database(db).execute("SELECT run_id, error, failed_at FROM sweep_failures").fetchall()
    assert failure[0] is None and "--ways 200 exceeds" in failure[1]

    again = runner.invoke(app, args)
    assert again.exit_code == 0 and finished_rows(db) == rows
    assert "finished 0, failed 0, interrupted 0, skipped 9 (8 done, 1 failed earlier)" in again.stdout
    assert "--retry-failed" in again.stdout

    dry = runner.invoke(app, [*args, "--dry-run"])
    assert (
        dry.exit_code == 0 and dry.stdout.count(" done ") == 8 and dry.stdout.count("failed (skipped)") == 1
    )
    assert "9 runs: 0 to run, 0 to resume, 9 skipped (8 done, 1 failed earlier)" in dry.stdout

    retried = runner.invoke(app, [*args, "--retry-failed"])
    assert (
        retried.exit_code == 1 and "finished 0, failed 1, interrupted 0, skipped 8 (8 done)" in retried.stdout
    )
    assert "failed pixels-nn lake 200w1s smoke seed 0: --ways 200 exceeds" in retried.stdout
    assert finished_rows(db) == rows


def test_a_killed_sweep_loses_nothing_and_finishes_when_started_again(tmp_path: Path) -> None:
    path = sweep_file(
        tmp_path,
        '[sweep]\nmethods = ["pixels-nn", "protonet"]\npresets = "smoke"\ndevice = "cpu"\n\n'
        "[budget.protonet]\nmeta_steps = 20\neval_episodes = 8\n",
    )
    db, results = tmp_path / "runs.db", tmp_path / "results"
    args = [
        "sweep",
        str(path),
        "--db",
        str(db),
        "--results",
        str(results),
        "--workers",
        "2",
        "--events",
        "plain",
    ]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "metabench", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert sweep.stderr is not None
    for line in sweep.stderr:  # once the first run has finished and the second one trains, stop the
        if line.startswith("[1/2] finished pixels-nn"):  # sweep as Ctrl-C would
            break
    deadline = time.monotonic() + 120
    while sweep.poll() is None and time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE method = 'protonet' AND status = 'running'").fetchone():
                break
        time.sleep(0.05)
    time.sleep(0.2)
    sweep.send_signal(signal.SIGINT)
    stdout, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, stderr
    assert (
        "finished 1, failed 0, interrupted 1, skipped 0" in stdout and "run the same command again" in stdout
    )
    with sqlite3.connect(db) as conn:
        [(run_id, steps)] = conn.execute(
            "SELECT run_id, steps_done FROM runs WHERE status = 'interrupted'"
        ).fetchall()
    assert steps < 20

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.stderr
    assert (
        "finished 1, failed 0, interrupted 0, skipped 1 (1 done)" in again.stdout and run_id in again.stdout
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        statuses = conn.execute(
            "SELECT status, count(*), count(DISTINCT spec_hash) FROM runs GROUP BY status"
        ).fetchall()
    assert statuses == [("finished", 2, 2)]  # the interrupted run was resumed, not run a second time
    assert (results / "runs" / f"{run_id}.json").is_file()
