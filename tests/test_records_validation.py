"""Ingest believes nothing: every record is checked against one schema, and a refused file is named."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_leaderboard import make_record, run_id_of

from metabench.db import migrate, open_database
from metabench.leaderboard import (
    RunRecord,
    build_leaderboards,
    get_run,
    ingest_directory,
    list_runs,
    portable,
    read_record_file,
    save_record,
    write_record_file,
)
from metabench.leaderboard.records import budget_text
from metabench.leaderboard.store import MIGRATIONS, NAMESPACE, _record_to_row

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "records.db")
    yield database
    database.conn.close()


def valid() -> dict[str, Any]:
    return make_record("000a", "protonet", 0.9, episodes=20).to_dict()


def setting(*path_and_value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets data[path...] = value."""
    *path, value = path_and_value

    def mutate(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def dropping(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


HOSTILE: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("accuracy of 500%", setting("accuracy", 5.0), r"'accuracy' must be a fraction in \[0, 1\]"),
    ("accuracy not the mean", setting("accuracy", 0.99), r"'accuracy' 0.99 is not the mean of its episodes"),
    ("ci95 not recomputed", setting("ci95", 0.0001), r"'ci95' 0.0001 is not the interval of its episodes"),
    (
        "3 episodes where the spec says 20",
        lambda d: d.update(episode_accuracies=d["episode_accuracies"][:3]),
        r"holds 3 episodes but the spec tests 20",
    ),
    (
        "spec eval_episodes 'lots'",
        setting("spec", "eval_episodes", "lots"),
        r"'spec.eval_episodes' must be a whole",
    ),
    (
        "flat eval_episodes 'lots'",
        setting("eval_episodes", "lots"),
        r"'eval_episodes' 'lots' differs from the spec",
    ),
    ("flat method differs", setting("method", "maml"), r"'method' 'maml' differs from the spec's 'protonet'"),
    (
        "flat episode differs",
        setting("episode", {"ways": 20, "shots": 1, "queries": 15}),
        r"'episode' .* differs",
    ),
    (
        "absolute path as run id",
        setting("run_id", "/home/someone/thesis"),
        r"is not a run id \(expected METHOD",
    ),
    ("empty run id", setting("run_id", ""), r"'' is not a run id"),
    ("run id climbing out", setting("run_id", "../../etc"), r"is not a run id"),
    (
        "run id of another spec",
        setting("run_id", run_id_of("maml", "000a")),
        r"does not name this run's spec \(expected protonet-vinyals-5w1s-",
    ),
    ("run id not a string", setting("run_id", nested(50)), r"'run_id' must be one line of text"),
    (
        "seed of 2**63",
        setting("spec", "seed", 2**63),
        r"'spec.seed' must be a whole number in \[0, 9223372036854775807\]",
    ),
    ("eval seed of 2**64", setting("eval_seed", 2**64), r"'eval_seed' must be a whole number"),
    ("negative steps", setting("steps_done", -1), r"'steps_done' must be a whole number"),
    ("float steps", setting("steps_done", 1.5), r"'steps_done' must be a whole number"),
    ("boolean batch size", setting("eval_batch_size", True), r"'eval_batch_size' must be a whole number"),
    ("huge float", setting("wall_time_s", 10**400), r"'wall_time_s' must be a finite number >= 0"),
    ("negative time", setting("train_time_s", -5.0), r"'train_time_s' must be a finite number >= 0"),
    (
        "unknown protocol",
        setting("spec", "protocol", "bogus"),
        r"'spec.protocol' must be one of vinyals, lake",
    ),
    (
        "unknown preset",
        setting("spec", "preset", "huge"),
        r"'spec.preset' must be one of smoke, quick, paper",
    ),
    ("unknown device", setting("spec", "device", "tpu"), r"'spec.device' must be one of auto, cpu, cuda"),
    ("boolean ways", setting("spec", "episode", "ways", True), r"'spec.episode.ways' must be a whole number"),
    ("extra spec key", setting("spec", "extra", 1), r"'spec' must have exactly the keys"),
    ("missing spec key", lambda d: d["spec"].pop("seed"), r"'spec' must have exactly the keys"),
    (
        "override not a string",
        setting("spec", "overrides", {"lr": 0.1}),
        r"'spec.overrides.lr' must be one line",
    ),
    ("spec hash forged", setting("spec_hash", "0123456789ab"), r"'spec_hash' '0123456789ab' is not the hash"),
    ("failed run with accuracy", setting("status", "failed"), r"a failed run has no accuracy"),
    (
        "finished without accuracy",
        lambda d: d.update(accuracy=None, ci95=None),
        r"a finished run needs 'accuracy' and 'finished_at'",
    ),
    ("episode over 100%", setting("episode_accuracies", 0, 1.5), r"'episode_accuracies' must be a fraction"),
    ("episodes not a list", setting("episode_accuracies", "all"), r"'episode_accuracies' must be a list"),
    ("curve step a string", setting("curve", 0, "step", "x"), r"'curve step' must be a whole number"),
    ("curve of numbers", setting("curve", [1, 2]), r"'curve' must be a list of objects"),
    ("transductive 'yes'", setting("transductive", "yes"), r"'transductive' must be true or false"),
    ("versions nested", setting("versions", "torch", {"a": 1}), r"'versions.torch' must be one line"),
    ("device name of two lines", setting("device_name", "a\nb"), r"'device_name' must be one line"),
    ("created_at not a time", setting("created_at", "yesterday"), r"'created_at' must be a UTC time"),
    (
        "created_at 31 February",
        setting("created_at", "2026-02-31T00:00:00Z"),
        r"'created_at' must be a UTC time",
    ),
    (
        "episode digest not hex",
        setting("test_episodes_digest", "zz"),
        r"'test_episodes_digest' must be a hex",
    ),
    ("code version forged", setting("code_version", "trust me"), r"'code_version' must be git:<commit>"),
    ("zero torch threads", setting("torch_threads", 0), r"'torch_threads' must be a whole number in \[1,"),
    (
        "overrides not an object",
        setting("preset_overrides", []),
        r"'preset_overrides' must be an object or null",
    ),
    (
        "budget override of another budget",
        setting("preset_overrides", {"meta_steps": 5}),
        r"'preset_overrides' meta_steps 5 differs from the spec's 1000",
    ),
    (
        "--set key the spec lacks",
        setting("preset_overrides", {"lr": "0.1"}),
        r"'preset_overrides' \{'lr': '0.1'\} differs from the spec's overrides \{\}",
    ),
    ("missing status", dropping("status"), r"missing 'status'"),
    ("format 2 without preset_overrides", dropping("preset_overrides"), r"missing 'preset_overrides'"),
    ("format true", setting("format", True), r"unsupported record format True"),
    ("format 2.0", setting("format", 2.0), r"unsupported record format 2.0"),
]


@pytest.mark.parametrize(("mutate", "message"), [case[1:] for case in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_a_hostile_record_is_refused_with_the_field_named(mutate, message) -> None:
    data = valid()
    RunRecord.from_dict(copy.deepcopy(data))  # the unmutated record is valid
    mutate(data)
    with pytest.raises(ValueError, match=message):
        RunRecord.from_dict(data)


def test_the_table_holds_at_least_forty_distinct_cases() -> None:
    assert len({name for name, _, _ in HOSTILE}) == len(HOSTILE) >= 40


def test_a_record_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="a run record must be a JSON object"):
        RunRecord.from_dict([1, 2])


def test_the_database_refuses_what_ingest_refuses_and_writes_nothing(db) -> None:
    record = make_record("000a", "protonet", 0.9, episodes=20)
    with pytest.raises(ValueError, match="is not the mean of its episodes"):
        save_record(db, replace(record, accuracy=1.0))
    with pytest.raises(ValueError, match="'eval_seed' must be a whole number"):
        save_record(db, replace(record, eval_seed=2**63))  # sqlite would raise OverflowError
    assert list_runs(db) == []


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def mutated(mutate: Callable[[dict[str, Any]], None]) -> str:
    data = valid()
    mutate(data)
    return json.dumps(data)


def test_ingest_names_each_refused_file_and_loads_the_others(db, tmp_path: Path, monkeypatch) -> None:
    results = tmp_path / "results"
    good = make_record("000a", "protonet", 0.9, episodes=20)
    write_record_file(good, results)
    runs = results / "runs"
    text = json.dumps(valid())
    monkeypatch.setattr(portable, "MAX_RECORD_BYTES", 300_000)  # a small cap keeps the test fast
    cases = {
        "deep.json": "[" * 100_000 + "]" * 100_000,  # json: RecursionError
        "deep-value.json": mutated(setting("status", nested(500))),
        "big-int.json": mutated(setting("steps_done", 2**63)),  # sqlite: OverflowError
        "long-int.json": text.replace('"steps_done": 1000', '"steps_done": 1' + "0" * 5000),
        "latin1.json": text.encode().replace(b'"CPU', b'"\xe9CPU'),  # UnicodeDecodeError
        "huge.json": text + " " * 300_000,  # past the size cap
        "nan.json": mutated(setting("wall_time_s", float("nan"))),
        "lots.json": mutated(setting("spec", "eval_episodes", "lots")),
        "forged.json": mutated(setting("accuracy", 5.0)),
    }
    for name, content in cases.items():
        write(runs, name, content)
    os.mkfifo(runs / "fifo.json")  # reading it would block forever
    outcome = ingest_directory(db, results)
    assert outcome.loaded == (good.run_id,)
    reasons = {Path(w.split(": ", 1)[0].removeprefix("skipping ")).name: w for w in outcome.warnings}
    assert set(reasons) == {*cases, "fifo.json"}
    expected = {
        "deep.json": "nested too deeply",
        "deep-value.json": "'status' must be one of",
        "big-int.json": "'steps_done' must be a whole number",
        "long-int.json": "a number too long",
        "latin1.json": "not UTF-8 text",
        "huge.json": "larger than",
        "nan.json": "'wall_time_s' must be a finite number",
        "lots.json": "'spec.eval_episodes' must be a whole number",
        "forged.json": "'accuracy' must be a fraction",
        "fifo.json": "not a regular file",
    }
    for name, reason in expected.items():
        assert reason in reasons[name] and "\n" not in reasons[name], reasons[name]
    assert [b.rows[0].run_id for b in build_leaderboards(db)] == [good.run_id]


def test_every_committed_record_still_ingests_and_ranks(db) -> None:
    outcome = ingest_directory(db, REPO / "results" / "runs")
    files = sorted((REPO / "results" / "runs").glob("*.json"))
    assert outcome.warnings == () and len(outcome.loaded) == len(files) >= 12
    boards = build_leaderboards(db)
    assert sum(len(board.rows) for board in boards) >= 8
    # Upgraded from format 1 by scripts/upgrade_records.py: the test-episode digest and the overrides
    # derived from the spec (one per setting, so every pair on a board is paired), the rest unknown.
    records = [read_record_file(path) for path in files]
    digests: dict[tuple[str, str], set[str]] = {}
    for r in records:
        digests.setdefault((r.protocol, r.episode.label), set()).add(r.test_episodes_digest)
    assert all(len(found) == 1 and "" not in found for found in digests.values()), digests
    overridden = {r.run_id: dict(r.preset_overrides) for r in records if r.preset_overrides}
    assert overridden == {
        "maml-vinyals-5w1s-20261126T110327-43b3": {"meta_steps": 6000},
        "snail-vinyals-20w1s-20261202T014943-4603": {"meta_steps": 4000},
    }
    upgraded = [r for r in records if r.created_at < "2026-12"]
    assert len(upgraded) == 12 and all(r.torch_threads is None and r.code_version == "" for r in upgraded)
    # Runs recorded since say which code and how many threads ran them.
    assert all(r.code_version.startswith("git:") and r.torch_threads for r in records if r not in upgraded)
    assert all(row.p_value_vs_above is not None for board in boards for row in board.rows[1:])
    assert RunRecord.from_dict(json.loads(json.dumps(records[0].to_dict()))) == records[0]


def test_older_formats_read_with_the_new_fields_unknown() -> None:
    data = valid()
    for key in ("model_selection", "tested_step"):
        data.pop(key)
    record = RunRecord.from_dict({**data, "format": 2})
    assert (record.model_selection, record.tested_step) == ("last", None)
    for key in ("test_episodes_digest", "torch_threads", "code_version", "preset_overrides"):
        data.pop(key)
    record = RunRecord.from_dict({**data, "format": 1})
    assert (record.code_version, record.preset_overrides) == ("", None)


def test_a_database_of_the_first_schema_is_upgraded_and_its_runs_kept(tmp_path: Path) -> None:
    database = open_database(tmp_path / "old.db")
    migrate(database, NAMESPACE, MIGRATIONS[:1])
    record = make_record("000a", "protonet", 0.9, episodes=20)
    row = _record_to_row(record, None)
    for key in (
        "test_episodes_digest",
        "torch_threads",
        "code_version",
        "preset_overrides_json",
        "model_selection",
        "tested_step",
    ):
        row.pop(key)
    database.conn.execute(
        f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
    )
    database.conn.commit()
    upgraded = get_run(database, record.run_id)
    assert upgraded is not None and upgraded.preset_overrides is None and upgraded.test_episodes_digest == ""
    assert (upgraded.model_selection, upgraded.tested_step) == ("last", None)
    assert upgraded.accuracy == record.accuracy
    database.conn.close()


def test_runs_are_paired_only_on_equal_test_episode_digests(db) -> None:
    save_record(db, make_record("000a", "protonet", 0.95, noise_seed=1))
    save_record(db, make_record("000a", "maml", 0.80, family="A", noise_seed=2))
    save_record(db, make_record("000a", "pixels-nn", 0.70, family="baseline", noise_seed=3,
                                test_episodes_digest="ffffffffffffffff"))  # fmt: skip
    save_record(db, make_record("000a", "fomaml", 0.60, family="A", noise_seed=4, test_episodes_digest=""))
    save_record(db, make_record("000b", "fomaml", 0.50, family="A", noise_seed=5, test_episodes_digest=""))
    [board] = build_leaderboards(db, all_runs=True)
    p_values = {row.method + row.run_id[-1]: row.p_value_vs_above for row in board.rows}
    assert p_values["protoneta"] is None  # the top row
    assert p_values["mamla"] is not None  # same digest as protonet's
    assert p_values["pixels-nna"] is None  # other test episodes
    assert p_values["fomamla"] is None  # unknown episodes: never paired
    assert p_values["fomamlb"] is None  # not even with another unknown


def test_the_budget_says_when_it_was_overridden(db) -> None:
    assert budget_text("quick", 1000, {}) == "quick, 1000 steps"
    assert budget_text("quick", 6000, {"meta_steps": 6000}) == "quick, 6000 steps (overridden)"
    assert budget_text("quick", 6000, None) == "quick, 6000 steps"  # a record that cannot tell
    assert (
        budget_text("smoke", 10, {"eval_episodes": 8, "lr": "0.1", "hidden": "32"})
        == "smoke, 10 steps, 8 test episodes (overridden), --set hidden=32 lr=0.1"
    )
    save_record(db, make_record("000a", "maml", 0.9, meta_steps=6000, preset_overrides={"meta_steps": 6000}))
    [board] = build_leaderboards(db)
    assert board.rows[0].budget == "quick, 6000 steps (overridden)"
    assert list_runs(db)[0].budget == "quick, 6000 steps (overridden)"


def test_rows_stored_before_records_were_checked_do_not_break_the_boards(db) -> None:
    good = make_record("000a", "protonet", 0.9, episodes=20)
    save_record(db, good)
    for tag, column, value in (("000b", "eval_episodes", "lots"), ("000c", "accuracy", 5.0)):
        row = _record_to_row(make_record(tag, "maml", 0.8, family="A", episodes=20), None)
        row[column] = value  # as an ingest of the old code left it
        db.conn.execute(
            f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
    db.conn.commit()
    boards = build_leaderboards(db)
    assert [[row.run_id for row in board.rows] for board in boards] == [[good.run_id]]
