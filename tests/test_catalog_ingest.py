"""Ingest: counts, idempotence, updates and deletions, one atomic transaction, automatic first load."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from metabench import catalog
from metabench.catalog.source import SOURCE_FILES, bundled_source_dir
from metabench.db import open_database, schema_version
from metabench.errors import MetabenchError


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    copy = tmp_path / "catalog"
    copy.mkdir()
    for name in SOURCE_FILES:
        shutil.copy(bundled_source_dir() / name, copy / name)
    return copy


@pytest.fixture()
def db(tmp_path: Path) -> sqlite_utils.Database:
    return open_database(tmp_path / "catalog.db")


def dump(db: sqlite_utils.Database) -> str:
    return "\n".join(db.conn.iterdump())


def count(db: sqlite_utils.Database, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_first_ingest_loads_everything(db: sqlite_utils.Database) -> None:
    report = catalog.ingest(db)
    assert (report.applications, report.cells, report.papers, report.techniques) == (12, 50, 76, 27)
    assert report.inserted == 12 + 50 + 76 + 27
    assert (report.updated, report.deleted) == (0, 0)
    assert count(db, "catalog_applications") == 12
    assert count(db, "catalog_cells") == 50
    assert count(db, "catalog_papers") == 76
    assert count(db, "catalog_techniques") == 27
    assert count(db, "catalog_search") == 76
    assert schema_version(db, "catalog") == 1


def test_second_ingest_changes_nothing(db: sqlite_utils.Database) -> None:
    catalog.ingest(db)
    before, changes_before = dump(db), db.conn.total_changes
    report = catalog.ingest(db)
    assert not report.changed
    assert db.conn.total_changes == changes_before
    assert dump(db) == before


def test_ingest_applies_edits_and_removals_and_keeps_search_in_sync(
    db: sqlite_utils.Database, source: Path
) -> None:
    catalog.ingest(db, source)
    replace_in(source / "papers.csv", "How to train your MAML", "How to train your MAML (a retitled edition)")
    # Drop the last paper and its technique (both last in their files, so no other row moves up).
    for name, key in (("papers.csv", "lake2015human,"), ("techniques.csv", "lake2015human,")):
        path = source / name
        lines = [
            line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if key not in line
        ]
        path.write_text("".join(lines), encoding="utf-8")
    report = catalog.ingest(db, source)
    assert (report.inserted, report.updated, report.deleted) == (0, 1, 2)
    assert catalog.get_paper(db, "lake2015human") is None
    assert [p.cite_key for p in catalog.search_papers(db, "retitled edition")] == ["antoniou2019train"]
    assert count(db, "catalog_search") == 75


def test_reordering_lines_reorders_the_table(db: sqlite_utils.Database, source: Path) -> None:
    catalog.ingest(db, source)
    path = source / "applications.csv"
    header, *names = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(header + "".join(reversed(names)), encoding="utf-8")
    report = catalog.ingest(db, source)
    assert (report.inserted, report.updated, report.deleted) == (0, 12, 0)
    assert [row.application for row in catalog.survey_table(db).rows][0] == "Multi-model"


def test_moving_a_cell_reindexes_the_application_in_search(db: sqlite_utils.Database, source: Path) -> None:
    catalog.ingest(db, source)
    assert "hu2019few" in {p.cite_key for p in catalog.search_papers(db, "word embedding")}
    replace_in(source / "cells.csv", "Word Embedding,A,,hu2019few", "Parsing,A,,hu2019few")
    catalog.ingest(db, source)
    assert "hu2019few" not in {p.cite_key for p in catalog.search_papers(db, "word embedding")}
    assert "hu2019few" in {p.cite_key for p in catalog.search_papers(db, "parsing")}
    assert [c.cite_key for c in catalog.list_cells(db, application="Word Embedding")] == ["sun2018memory"]


def test_a_failing_write_rolls_back_the_whole_ingest(db: sqlite_utils.Database, source: Path) -> None:
    catalog.ingest(db, source)
    # A real SQLite failure half-way: papers are upserted before cells, so by the time the trigger
    # fires the retitled paper has been written inside the transaction and must be undone.
    db.execute(
        "CREATE TRIGGER refuse_parsing_cell BEFORE INSERT ON catalog_cells WHEN new.application = 'Parsing' "
        "AND new.cite_key = 'hu2019few' BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
    )
    db.conn.commit()
    replace_in(source / "papers.csv", "How to train your MAML", "How to train your MAML: retitled")
    replace_in(source / "cells.csv", "Word Embedding,A,,hu2019few", "Parsing,A,,hu2019few")
    before = dump(db)
    with pytest.raises(MetabenchError, match="refused by test trigger.*the database is unchanged"):
        catalog.ingest(db, source)
    assert dump(db) == before
    assert not db.conn.in_transaction
    assert catalog.get_paper(db, "antoniou2019train").paper.title == "How to train your MAML"


def test_ingest_inside_a_callers_transaction_uses_a_savepoint(db: sqlite_utils.Database) -> None:
    catalog.ensure_catalog(db)
    db.execute("BEGIN")
    db.execute("CREATE TABLE caller_work (x INTEGER)")
    report = catalog.ingest(db)
    assert not report.changed
    assert db.conn.in_transaction  # the caller's transaction is still theirs to finish
    db.conn.rollback()
    assert "caller_work" not in db.table_names()


def test_ensure_catalog_loads_a_new_database_once(db: sqlite_utils.Database) -> None:
    catalog.ensure_catalog(db)
    assert count(db, "catalog_papers") == 76
    before = dump(db)
    catalog.ensure_catalog(db)
    assert dump(db) == before


def test_ensure_catalog_reloads_when_the_bundled_source_changed(db: sqlite_utils.Database) -> None:
    catalog.ensure_catalog(db)
    # As after an upgrade: the database remembers an older bundled catalog.
    with db.conn:
        db.execute("UPDATE catalog_meta SET value = 'an older digest' WHERE key = 'digest'")
        db.execute("UPDATE catalog_papers SET title = 'stale title' WHERE cite_key = 'finn2017model'")
    catalog.ensure_catalog(db)
    assert catalog.get_paper(db, "finn2017model").paper.title.startswith("Model-Agnostic Meta-Learning")


def test_ensure_catalog_keeps_a_catalog_ingested_from_elsewhere(
    db: sqlite_utils.Database, source: Path
) -> None:
    replace_in(source / "papers.csv", "How to train your MAML", "How to train your MAML (local copy)")
    catalog.ingest(db, source)
    catalog.ensure_catalog(db)
    assert catalog.get_paper(db, "antoniou2019train").paper.title.endswith("(local copy)")


def test_validation_happens_before_any_write_even_on_a_new_database(
    db: sqlite_utils.Database, source: Path
) -> None:
    replace_in(source / "cells.csv", "Parsing,A,,guo2019coupling", "Parsing,Z,,guo2019coupling")
    with pytest.raises(catalog.CatalogValidationError, match="unknown family 'Z'"):
        catalog.ingest(db, source)
    assert "catalog_papers" not in db.table_names()


def test_read_only_database_gives_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    catalog.ensure_catalog(open_database(path))
    read_only = sqlite_utils.Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    with pytest.raises(MetabenchError, match="ro.db is read-only: check its permissions.*is unchanged"):
        catalog.ingest(read_only, bundled_source_dir())
    # A catalog already loaded needs no write, so it stays usable read-only.
    catalog.ensure_catalog(read_only)
    assert len(catalog.list_cells(read_only)) == 50


def test_concurrent_first_use_of_a_new_database(tmp_path: Path) -> None:
    """The TUI and a CLI command may both find a fresh database: both must end up with the catalog."""
    import threading

    path = tmp_path / "shared.db"
    start = threading.Barrier(3)
    outcomes: list[object] = []

    def first_use() -> None:
        try:
            connection = open_database(path)
            start.wait(timeout=60)  # a thread that failed above must not leave the others waiting
            catalog.ensure_catalog(connection)
            outcomes.append(len(catalog.list_cells(connection)))
        except Exception as exc:  # recorded, so the assertion below shows what went wrong
            outcomes.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [50, 50, 50]
