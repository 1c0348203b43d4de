"""Leaderboard core: record round-trips, ingest, ranking per setting, the paired test, markdown export."""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

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
    paired_t_test,
    render_markdown,
    save_record,
    write_record_file,
)
from metabench.leaderboard.stats import mean_ci95, student_t_two_sided_p

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
) -> RunRecord:
    """A hand-made finished run whose per-episode accuracies are multiples of 1/(ways*queries)."""
    rng = random.Random(noise_seed)
    per_task = ways * queries
    accuracies = tuple(
        round(min(1.0, max(0.0, mean + rng.gauss(0.0, 0.05))) * per_task) / per_task for _ in range(episodes)
    )
    accuracy, ci95 = mean_ci95(accuracies)
    spec = RunSpec(
        method=method,
        protocol=protocol,
        episode=EpisodeSpec(ways, shots, queries),
        preset=preset,
        meta_steps=meta_steps,
        eval_episodes=episodes,
        seed=0,
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
        make_record("000a", "pixels-nn", 0.70, family="baseline", meta_steps=0, noise_seed=4),
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
    assert "| accuracy % | error % | published % |" in document
    assert "| ref | *people* | reference | 95.5 | 4.5 | published reference [" in document
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
