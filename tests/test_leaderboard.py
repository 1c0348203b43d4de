"""Leaderboard core: record round-trips, ingest, ranking per setting, the paired test, markdown export."""

from __future__ import annotations

import json
import math
import os
import random
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metabench.cli.app import app
from metabench.config import EpisodeSpec, RunSpec
from metabench.db import open_database
from metabench.leaderboard import (
    CurvePoint,
    RunRecord,
    build_leaderboards,
    delete_run,
    find_published,
    get_run,
    ingest_directory,
    list_runs,
    load_published,
    load_references,
    render_markdown,
    save_record,
    write_record_file,
)
from metabench.leaderboard.records import budget_text
from metabench.leaderboard.stats import (
    mean_ci95,
    paired_t_test,
    sample_std,
    seed_means,
    seed_paired_t_test,
    student_t_two_sided_p,
)

GOLDEN = Path(__file__).parent / "golden" / "leaderboard.md"


def run_id_of(method: str, tag: str, protocol: str = "vinyals", setting: str = "5w1s") -> str:
    """A valid run id whose 4-hex `tag` tells the test's runs apart."""
    return f"{method}-{protocol}-{setting}-20260101T100000-{tag}"


def make_record(
    tag: str,
    method: str,
    mean: float,
    *,
    family: str = "B",
    protocol: str = "vinyals",
    ways: int = 5,
    shots: int = 1,
    queries: int = 15,
    episodes: int = 100,
    eval_seed: int = 1234,
    preset: str = "quick",
    meta_steps: int = 1000,
    transductive: bool = False,
    status: str = "finished",
    created_at: str = "2026-01-01T10:00:00Z",
    noise_seed: int = 0,
    test_episodes_digest: str = "e0e0e0e0e0e0e0e0",
    preset_overrides: dict | None = None,
    seed: int = 0,
    accuracies: tuple[float, ...] | None = None,
) -> RunRecord:
    """A hand-made finished run whose per-episode accuracies are multiples of 1/(ways*queries), or the
    given `accuracies` (then `mean` and `episodes` are theirs)."""
    rng = random.Random(noise_seed)
    per_task = ways * queries
    if accuracies is None:
        accuracies = tuple(
            round(min(1.0, max(0.0, mean + rng.gauss(0.0, 0.05))) * per_task) / per_task
            for _ in range(episodes)
        )
    episodes = len(accuracies)
    accuracy, ci95 = mean_ci95(accuracies)
    spec = RunSpec(
        method=method,
        protocol=protocol,
        episode=EpisodeSpec(ways, shots, queries),
        preset=preset,
        meta_steps=meta_steps,
        eval_episodes=episodes,
        seed=seed,
        device="cpu",
    )
    finished = status == "finished"
    return RunRecord(
        run_id=run_id_of(method, tag, protocol, f"{ways}w{shots}s"),
        status=status,
        spec=spec,
        spec_hash=spec.spec_hash(),
        family=family,
        transductive=transductive,
        eval_seed=eval_seed,
        eval_batch_size=25,
        created_at=created_at,
        steps_done=meta_steps,
        finished_at=created_at if finished else None,
        versions={"metabench": "0.1.0", "torch": "2.13.0", "cuda": None},
        device_type="cpu",
        device_name="CPU (test machine)",
        data_digest="d1d1d1d1d1d1d1d1",
        wall_time_s=200.0,
        train_time_s=185.5,
        eval_time_s=10.0,
        tasks_per_s=170.0,
        peak_rss_mb=512.0,
        curve=(CurvePoint(500, 0.9, 0.7, 0.75), CurvePoint(1000, 0.4, 0.9, 0.93)),
        accuracy=accuracy if finished else None,
        ci95=ci95 if finished else None,
        episode_accuracies=accuracies if finished else (),
        error=None if finished else "loss became nan at step 12",
        test_episodes_digest=test_episodes_digest,
        torch_threads=2,
        code_version="git:" + "ab12" * 10,
        preset_overrides={} if preset_overrides is None else preset_overrides,
    )


def golden_records() -> list[RunRecord]:
    return [
        make_record("000a", "protonet", 0.97, noise_seed=1),
        make_record("000a", "maml", 0.955, family="A", transductive=True, noise_seed=2),
        make_record("000a", "fomaml", 0.952, family="A", transductive=True, noise_seed=3),
        # MAML over three seeds: one row of their mean and spread, paired with its neighbours on seed 0,
        # the one seed they share.
        make_record("5ee1", "maml", 0.945, family="A", transductive=True, noise_seed=8, seed=1),
        make_record("5ee2", "maml", 0.96, family="A", transductive=True, noise_seed=9, seed=2),
        # A baseline of another seed: no seed in common with the row above, so seed averages are paired.
        make_record("000a", "pixels-nn", 0.70, family="baseline", meta_steps=0, noise_seed=4, seed=5),
        # A later smoke run of protonet must not replace the larger-budget run on the default board.
        make_record(
            "5111",
            "protonet",
            0.60,
            preset="smoke",
            meta_steps=20,
            created_at="2026-01-02T10:00:00Z",
            noise_seed=5,
        ),  # fmt: skip
        make_record("000a", "protonet", 0.91, ways=20, noise_seed=6),
        make_record("000a", "protonet", 0.93, protocol="lake", noise_seed=7),
        make_record("fa11", "maml", 0.0, family="A", status="failed"),
        # Lake's 20 runs: the board shows people and the other published references beside the runs.
        make_record("1a4e", "protonet", 0.96, protocol="lake-runs", ways=20, queries=1, episodes=20),
        make_record(
            "1a4e", "pretrain", 0.90, family="baseline", protocol="lake-runs", ways=20, queries=1, episodes=20
        ),
    ]


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "lb.db")
    yield database
    database.conn.close()


def test_record_round_trips_through_json_and_the_database(db, tmp_path: Path) -> None:
    record = make_record("0001", "protonet", 0.9, preset_overrides={"meta_steps": 1000, "lr": "0.01"})
    record = replace(record, spec=replace(record.spec, overrides=(("lr", "0.01"),)))
    record = replace(record, spec_hash=record.spec.spec_hash())
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    save_record(db, record)
    assert get_run(db, record.run_id) == record
    assert get_run(db, run_id_of("protonet", "ffff")) is None
    path = write_record_file(record, tmp_path / "results")
    assert path == tmp_path / "results" / "runs" / f"{record.run_id}.json"
    data = json.loads(path.read_text())
    assert data["episode"] == {"ways": 5, "shots": 1, "queries": 15} and data["format"] == 3
    assert data["preset_overrides"] == {"meta_steps": 1000, "lr": "0.01"}
    assert (data["torch_threads"], data["test_episodes_digest"]) == (2, "e0e0e0e0e0e0e0e0")


def test_ingest_upserts_valid_records_and_warns_once_per_invalid_file(db, tmp_path: Path) -> None:
    results = tmp_path / "results"
    first = make_record("000a", "protonet", 0.9)
    second = make_record("000b", "maml", 0.8, family="A", created_at="2026-01-02T10:00:00Z")
    write_record_file(first, results)
    write_record_file(second, results)
    (results / "runs" / "broken.json").write_text("{not json")
    (results / "runs" / "wrong.json").write_text(json.dumps({"format": 1, "run_id": "x"}))
    outcome = ingest_directory(db, results)
    assert sorted(outcome.loaded) == sorted([first.run_id, second.run_id])
    assert len(outcome.warnings) == 2
    assert all("\n" not in w and w.startswith("skipping ") for w in outcome.warnings)
    # Upsert: ingesting again changes nothing and duplicates nothing.
    ingest_directory(db, results)
    assert [r.run_id for r in list_runs(db)] == [second.run_id, first.run_id]
    assert get_run(db, first.run_id) == first


def test_list_runs_newest_first_filters_by_status_and_delete_removes_episodes(db) -> None:
    for record in golden_records():
        save_record(db, record)
    runs = list_runs(db)
    assert runs[0].run_id == run_id_of("protonet", "5111")  # the smoke run, a day later
    assert [r.run_id for r in list_runs(db, status="failed")] == [run_id_of("maml", "fa11")]
    assert len(list_runs(db, limit=2)) == 2
    with pytest.raises(ValueError, match="unknown status"):
        list_runs(db, status="done")
    maml = run_id_of("maml", "000a")
    assert db.execute("SELECT COUNT(*) FROM run_episodes WHERE run_id = ?", [maml]).fetchone()[0] == 100
    assert delete_run(db, maml) is True
    assert delete_run(db, maml) is False
    assert db.execute("SELECT COUNT(*) FROM run_episodes WHERE run_id = ?", [maml]).fetchone()[0] == 0


def test_boards_separate_protocols_and_episode_sets_and_rank_by_accuracy(db) -> None:
    records = golden_records() + [make_record("0600", "protonet", 0.97, episodes=60)]
    for record in records:
        save_record(db, record)
    boards = build_leaderboards(db)
    keys = [(b.setting.protocol, b.setting.ways, b.setting.eval_episodes) for b in boards]
    assert keys == [
        ("lake", 5, 100),
        ("lake-runs", 20, 20),
        ("vinyals", 5, 60),
        ("vinyals", 5, 100),
        ("vinyals", 20, 100),
    ]
    main = boards[3]
    assert [row.method for row in main.rows][::3] == ["protonet", "pixels-nn"]
    assert {row.method for row in main.rows[1:3]} == {"maml", "fomaml"}
    assert [row.rank for row in main.rows] == [1, 2, 3, 4]
    assert main.rows[0].run_id == run_id_of("protonet", "000a")  # the smoke run does not displace it
    accuracies = [row.accuracy for row in main.rows]
    assert accuracies == sorted(accuracies, reverse=True)
    # Published numbers only where the paper's protocol matches, with the difference in points.
    protonet = main.rows[0]
    assert protonet.published == 98.8 and protonet.difference == pytest.approx(protonet.accuracy - 98.8)
    assert boards[0].rows[0].published is None
    # Significance against the row above: none for the top row, computed for the others.
    assert main.rows[0].significant_vs_above is None
    assert main.rows[3].significant_vs_above is True  # 70% vs 95%: unmistakable
    assert main.rows[2].p_value_vs_above is not None
    # Filters and the all-runs view.
    assert [b.setting.label for b in build_leaderboards(db, ways=20)] == ["20w1s", "20w1s"]
    assert build_leaderboards(db, protocol="lake")[0].setting.protocol == "lake"
    everything = build_leaderboards(db, protocol="vinyals", ways=5, shots=1, all_runs=True)
    assert sum(len(b.rows) for b in everything) == 6


def test_boards_of_different_eval_seeds_are_never_merged(db) -> None:
    save_record(db, make_record("000a", "protonet", 0.9, eval_seed=1))
    save_record(db, make_record("000b", "maml", 0.9, family="A", eval_seed=2))
    assert len(build_leaderboards(db)) == 2


def test_published_lookup_prefers_the_matching_evaluation() -> None:

    published = load_published()
    assert find_published(published, "reptile", "vinyals", 5, 1, transductive=False).accuracy == 95.39
    assert find_published(published, "reptile", "vinyals", 5, 1, transductive=True).accuracy == 97.68
    maml = find_published(published, "maml", "vinyals", 20, 1, transductive=False)
    assert (maml.accuracy, maml.ci95, maml.transductive) == (95.8, 0.3, True)
    assert find_published(published, "maml", "lake", 5, 1, transductive=False) is None


def test_student_t_p_values_match_closed_forms() -> None:
    assert student_t_two_sided_p(1.0, 1) == pytest.approx(0.5)  # Cauchy
    for t in (0.3, 1.0, 2.5, 7.0):
        assert student_t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)
    assert student_t_two_sided_p(2.228138852, 10) == pytest.approx(0.05, abs=1e-7)  # t table value
    assert student_t_two_sided_p(1.959963985, 10**7) == pytest.approx(0.05, abs=1e-5)  # the normal limit
    assert student_t_two_sided_p(0.0, 5) == 1.0


def test_paired_t_test_on_known_inputs() -> None:
    result = paired_t_test([1.0, 0.8, 0.9, 1.0], [0.9, 0.8, 0.7, 0.9])
    # differences 0.1, 0, 0.2, 0.1: mean 0.1, sd sqrt(0.02/3), t = 0.1 / (sd / 2) = 2.449
    assert result.mean_difference == pytest.approx(0.1)
    assert result.t == pytest.approx(math.sqrt(6))
    assert result.p_value == pytest.approx(0.0917211, abs=1e-6)
    assert not result.significant
    identical = paired_t_test([0.5, 0.7], [0.5, 0.7])
    assert identical.p_value == 1.0 and not identical.significant
    shifted = paired_t_test([0.75, 0.5, 0.25], [0.5, 0.25, 0.0])
    assert shifted.p_value == 0.0 and shifted.significant
    with pytest.raises(ValueError, match="equal lengths"):
        paired_t_test([1.0, 0.0], [1.0])


def test_mean_ci95() -> None:
    mean, ci = mean_ci95([0.0, 1.0, 0.0, 1.0])
    assert mean == 0.5
    assert ci == pytest.approx(1.96 * math.sqrt(1 / 3) / 2)
    assert mean_ci95([0.7]) == (0.7, None)


def test_markdown_export_matches_the_golden_file(db) -> None:
    for record in golden_records():
        save_record(db, record)
    document = render_markdown(build_leaderboards(db))
    if os.environ.get("METABENCH_UPDATE_GOLDEN"):
        GOLDEN.write_text(document)
    assert document == GOLDEN.read_text()


def test_lake_runs_boards_show_the_published_references_and_error_rates(db) -> None:
    for record in golden_records():
        save_record(db, record)
    [board] = build_leaderboards(db, protocol="lake-runs")
    assert board.setting.reports_error_rate
    names = [getattr(entry, "method", getattr(entry, "name", None)) for entry in board.entries()]
    people = next(ref for ref in board.references if ref.name == "people")
    assert (people.error, people.accuracy) == (4.5, 95.5) and "Science 2015" in people.paper
    accuracies = [entry.accuracy for entry in board.entries()]
    assert accuracies == sorted(accuracies, reverse=True)
    assert names.index("Bayesian Program Learning") < names.index("people")
    assert [row.rank for row in board.rows] == [1, 2]  # references are shown, never ranked
    document = render_markdown([board])
    assert "| accuracy % | error % | seeds | published % |" in document
    assert "| ref | *people* | reference | 95.5 | 4.5 | - | published reference [" in document
    assert board.to_dict()["references"][0]["name"] == "Bayesian Program Learning"
    # Other protocols have neither references nor an error column.
    vinyals = build_leaderboards(db, protocol="vinyals")[0]
    assert vinyals.references == () and "error %" not in render_markdown([vinyals])


def test_malformed_references_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "references.csv"
    path.write_text("protocol,ways,shots,name,error,paper,table,note\nlake-runs,20,1,people,104.5,p,t,\n")
    with pytest.raises(ValueError, match="references.csv, line 2: malformed row"):
        load_references(path)
    path.write_text("protocol,ways,shots,name,accuracy\n")
    with pytest.raises(ValueError, match="expected the columns protocol,ways,shots,name,error"):
        load_references(path)


def test_markdown_of_an_empty_database_says_so(db) -> None:
    assert "No finished runs yet" in render_markdown(build_leaderboards(db))


def test_invalid_records_name_the_problem() -> None:
    data = make_record("000a", "protonet", 0.9).to_dict()
    with pytest.raises(ValueError, match="'status' must be one of running, finished"):
        RunRecord.from_dict({**data, "status": "done"})
    with pytest.raises(ValueError, match="unsupported record format 99"):
        RunRecord.from_dict({**data, "format": 99})
    with pytest.raises(ValueError, match="'accuracy' must be a fraction in"):
        RunRecord.from_dict({**data, "accuracy": "high"})
    with pytest.raises(ValueError, match="shots \\+ queries = 25"):
        RunRecord.from_dict(
            {**data, "spec": {**data["spec"], "episode": {"ways": 5, "shots": 10, "queries": 15}}}
        )


def test_a_method_without_a_published_number_says_so(db) -> None:
    published = load_published()
    lstm = find_published(published, "lstm-optimizer", "vinyals", 5, 1, transductive=False)
    assert lstm is not None and lstm.accuracy is None and "no published Omniglot number" in lstm.note
    save_record(db, make_record("0b0b", "lstm-optimizer", 0.6, episodes=100))
    [board] = build_leaderboards(db)
    [row] = board.rows
    assert (row.published, row.difference) == (None, None) and row.published_paper
    document = render_markdown([board])
    assert "| none published [1] | - |" in document
    assert "1. lstm-optimizer: Ravi & Larochelle, ICLR 2017, -; no published Omniglot number" in document


# --- seeds: runs that differ only by seed share a row ----------------------------------------------


def test_seed_statistics_match_hand_computations() -> None:
    assert sample_std([0.8, 0.7, 0.9]) == pytest.approx(0.1)  # deviations 0, -0.1, 0.1: sqrt(0.02 / 2)
    values = [0.953, 0.941, 0.962, 0.95]
    assert sample_std(values) == pytest.approx(statistics.stdev(values))
    assert sample_std([0.9]) is None
    assert seed_means([[1.0, 0.8, 0.6], [0.8, 0.8, 0.4]]) == pytest.approx((0.9, 0.8, 0.5))
    with pytest.raises(ValueError, match="different lengths"):
        seed_means([[1.0, 0.8], [0.8]])
    # Seeds 0 and 1 are matched, seed 2 (b's alone) is left out: a averages to 0.9, 0.8, 0.5 and b to
    # 0.6, 0.7, 0.3. Differences 0.3, 0.1, 0.2: mean 0.2, sd 0.1, t = 0.2 / (0.1 / sqrt(3)) = 2 sqrt(3),
    # and with 2 degrees of freedom p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(12 / 14).
    a = {0: [1.0, 0.8, 0.6], 1: [0.8, 0.8, 0.4]}
    b = {0: [0.6, 0.6, 0.4], 1: [0.6, 0.8, 0.2], 2: [0.0, 0.0, 0.0]}
    result = seed_paired_t_test(a, b)
    assert result.matched == (0, 1) and result.test.n == 3
    assert result.test.mean_difference == pytest.approx(0.2)
    assert result.test.t == pytest.approx(2 * math.sqrt(3))
    assert result.test.p_value == pytest.approx(1 - math.sqrt(12 / 14), abs=1e-12)
    # No seed in common: each group's average over all its seeds is paired.
    alone = seed_paired_t_test({0: [1.0, 0.8, 0.6]}, {3: [0.6, 0.6, 0.4], 4: [0.6, 0.8, 0.2]})
    assert alone.matched == () and alone.test == paired_t_test([1.0, 0.8, 0.6], [0.6, 0.7, 0.3])


def test_a_row_is_the_mean_and_spread_of_its_seeds(db) -> None:
    seeds = {0: (1.0, 0.8, 0.6, 0.8), 1: (0.8, 0.8, 0.4, 0.8), 2: (0.9, 0.9, 0.9, 0.9)}  # means .8 .7 .9
    for seed, accuracies in seeds.items():
        save_record(db, make_record(f"000{seed}", "protonet", 0.0, seed=seed, accuracies=accuracies))
    [board] = build_leaderboards(db)
    [row] = board.rows
    assert row.seeds == (0, 1, 2) and row.seed_accuracies == pytest.approx((80.0, 70.0, 90.0))
    assert row.accuracy == pytest.approx(80.0)
    assert row.seed_sd == pytest.approx(10.0) and row.seeds_text == "3 (sd 10.00)"
    # The interval is over the 4 episodes of the seed-averaged accuracies 0.9, 0.8333, 0.6333, 0.8333:
    # mean 0.8, squared deviations summing to 0.04, so sd sqrt(0.04 / 3).
    assert row.ci95 == pytest.approx(100 * 1.96 * math.sqrt(0.04 / 3) / 2)
    assert row.run_id == run_id_of("protonet", "0000")  # the first seed's run stands for the row
    assert row.run_ids == tuple(run_id_of("protonet", f"000{seed}") for seed in seeds)
    assert row.train_time_s == 185.5 and row.device == "CPU (test machine)"
    document = render_markdown([board])
    assert "| 80.00 +- 11.32 | 3 (sd 10.00) | 98.8 [1] |" in document
    assert "| quick, 1000 steps, seeds 0, 1, 2 |" in document
    assert f"`{run_id_of('protonet', '0000')}`, `{run_id_of('protonet', '0001')}`, `" in document
    data = json.loads(json.dumps(board.to_dict()))["rows"][0]
    assert (data["seeds"], data["seed_sd"], data["run_id"]) == ([0, 1, 2], pytest.approx(10.0), row.run_id)


def test_a_seed_run_again_counts_once_and_only_equal_specs_share_a_row(db) -> None:
    first = make_record("0000", "protonet", 0.9, noise_seed=1)
    rerun = make_record("0001", "protonet", 0.8, noise_seed=2, created_at="2026-01-03T10:00:00Z")
    seed_one = make_record("0002", "protonet", 0.85, noise_seed=3, seed=1)
    # Another learning rate, and a run whose test episodes are unknown: neither joins the row.
    other_lr = make_record("0003", "protonet", 0.7, noise_seed=4, preset_overrides={"lr": "0.01"})
    other_lr = replace(other_lr, spec=replace(other_lr.spec, overrides=(("lr", "0.01"),)))
    other_lr = replace(other_lr, spec_hash=other_lr.spec.spec_hash(), created_at="2026-01-01T09:00:00Z")
    unknown = make_record("0004", "protonet", 0.6, noise_seed=5, seed=2, test_episodes_digest="")
    for record in (first, rerun, seed_one, other_lr, unknown):
        save_record(db, record)
    [board] = build_leaderboards(db)  # the latest of the equal budgets: the row of seeds 0 and 1
    [row] = board.rows
    assert row.run_ids == (rerun.run_id, seed_one.run_id)  # the re-run of seed 0 replaces the first
    assert row.accuracy == pytest.approx(50 * (rerun.accuracy + seed_one.accuracy))
    [everything] = build_leaderboards(db, all_runs=True)
    assert sorted(r.run_ids for r in everything.rows) == sorted(
        [(rerun.run_id, seed_one.run_id), (first.run_id,), (other_lr.run_id,), (unknown.run_id,)]
    )
    assert RunSpec.seedless_hash(seed_one.spec) == rerun.spec.seedless_hash() != other_lr.spec.seedless_hash()


def test_the_largest_budget_represents_a_method_whatever_its_seeds(db, tmp_path: Path) -> None:
    for seed in range(3):
        save_record(db, make_record(f"000{seed}", "protonet", 0.6, preset="smoke", meta_steps=20, seed=seed))
    save_record(db, make_record("0100", "protonet", 0.9, created_at="2025-12-01T10:00:00Z"))
    [board] = build_leaderboards(db)
    assert [row.run_ids for row in board.rows] == [(run_id_of("protonet", "0100"),)]
    assert board.rows[0].seeds_text == "1 seed"
    assert len(build_leaderboards(db, all_runs=True)[0].rows) == 2
    # The command line: the seeds column, and an export of every budget with --all.
    runner, path = CliRunner(), str(tmp_path / "lb.db")
    table = runner.invoke(app, ["leaderboard", "--all", "--db", path], terminal_width=200).stdout
    assert "┃ seeds " in table and "│ 1 seed " in table and "│ 3 (sd " in table
    exported = runner.invoke(app, ["export", "--all", "--db", path]).stdout
    assert exported == render_markdown(build_leaderboards(db, all_runs=True)) != render_markdown([board])


def test_neighbours_are_paired_on_their_common_seeds_and_say_when_not_all(db) -> None:
    records = [
        *(make_record(f"a00{s}", "protonet", 0.95, noise_seed=s, seed=s) for s in (0, 1, 2)),
        *(make_record(f"b00{s}", "maml", 0.90, family="A", noise_seed=10 + s, seed=s) for s in (0, 1, 2)),
        make_record("c001", "fomaml", 0.85, family="A", noise_seed=20, seed=1),
        make_record("d009", "pixels-nn", 0.70, family="baseline", noise_seed=30, seed=9),
    ]
    for record in records:
        save_record(db, record)
    [board] = build_leaderboards(db)
    assert [row.method for row in board.rows] == ["protonet", "maml", "fomaml", "pixels-nn"]
    notes = [row.versus_note for row in board.rows]
    assert notes == [None, None, "matched on seed 1", "no seed in common: seed averages paired"]

    def episodes(method: str) -> dict[int, tuple[float, ...]]:
        runs = [r for r in records if r.method == method]
        return {r.seed: r.episode_accuracies for r in runs}

    # maml against protonet: every seed matched, each episode averaged over the three seeds.
    by_hand = paired_t_test(
        [statistics.mean(values) for values in zip(*episodes("protonet").values(), strict=True)],
        [statistics.mean(values) for values in zip(*episodes("maml").values(), strict=True)],
    )
    assert board.rows[1].p_value_vs_above == pytest.approx(by_hand.p_value)
    # fomaml (seed 1) against maml: maml's seed 1 alone.
    alone = paired_t_test(episodes("maml")[1], episodes("fomaml")[1])
    assert board.rows[2].p_value_vs_above == pytest.approx(alone.p_value)
    document = render_markdown([board])
    assert "(p < 0.001; no seed in common: seed averages paired)" in document


def test_seeds_tested_at_different_steps_say_each_step() -> None:
    assert budget_text("quick", 300, {}, "best-validation", (300, 300)) == (
        "quick, 300 steps, tested at step 300 (best validation)"
    )
    assert budget_text("quick", 300, {}, "best-validation", (300, 250, 300)) == (
        "quick, 300 steps, tested at steps 300, 250, 300 (best validation)"
    )


@pytest.mark.slow  # four real runs of a few seconds, in parallel
def test_real_runs_of_several_seeds_share_a_row(tmp_path: Path, one_thread: None) -> None:
    """pixels-nn trains nothing and its test episodes are fixed by the eval seed, so its seeds score
    alike (spread 0); protonet's two steps of training differ by seed."""
    path = tmp_path / "seeds.db"
    common = ["--preset", "smoke", "--eval-episodes", "16", "--device", "cpu", "--events", "none"]
    commands = [["pixels-nn", "--seed", str(seed)] for seed in (0, 2)]
    commands += [["protonet", "--meta-steps", "2", "--seed", str(seed)] for seed in (0, 1)]
    for args in commands:  # in this process: real runs, without a second import of torch for each
        result = CliRunner().invoke(app, ["run", *args, *common, "--db", str(path)])
        assert result.exit_code == 0, result.output
    db = open_database(path)
    [board] = build_leaderboards(db)
    rows = {row.method: row for row in board.rows}
    records = {run.run_id: get_run(db, run.run_id) for run in list_runs(db)}
    pixels, protonet = rows["pixels-nn"], rows["protonet"]
    assert pixels.seeds == (0, 2) and protonet.seeds == (0, 1)
    [pixel_episodes] = {records[run_id].episode_accuracies for run_id in pixels.run_ids}  # all alike
    assert pixels.seed_sd == 0.0 and pixels.seeds_text == "2 (sd 0.00)"
    assert pixels.ci95 == pytest.approx(100 * records[pixels.run_id].ci95)
    proto = [records[run_id] for run_id in protonet.run_ids]
    assert protonet.seed_sd == pytest.approx(statistics.stdev(100 * r.accuracy for r in proto))
    averaged = [
        statistics.mean(values) for values in zip(*(r.episode_accuracies for r in proto), strict=True)
    ]
    assert protonet.ci95 == pytest.approx(100 * 1.96 * statistics.stdev(averaged) / 4)
    # The rows are paired on seed 0, the one both have: protonet's seed 1 and pixels-nn's seed 2 are out.
    assert board.rows[1].versus_note == "matched on seed 0"
    expected = paired_t_test(records[protonet.run_id].episode_accuracies, pixel_episodes)
    assert board.rows[1].p_value_vs_above == pytest.approx(expected.p_value)
    db.conn.close()
