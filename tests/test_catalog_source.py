"""Broken catalog files give one-line `FILE:LINE: problem` errors and leave the database as it was."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlite_utils

from metabench import catalog
from metabench.catalog.source import SOURCE_FILES, bundled_source_dir, load_source
from metabench.db import open_database


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    """A private, editable copy of the bundled catalog."""
    copy = tmp_path / "catalog"
    copy.mkdir()
    for name in SOURCE_FILES:
        shutil.copy(bundled_source_dir() / name, copy / name)
    return copy


@pytest.fixture()
def db(tmp_path: Path) -> sqlite_utils.Database:
    database = open_database(tmp_path / "catalog.db")
    catalog.ensure_catalog(database)
    return database


def dump(db: sqlite_utils.Database) -> str:
    return "\n".join(db.conn.iterdump())


def line_of(path: Path, needle: str) -> int:
    """1-based number of the first line containing `needle`."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def edit_line(path: Path, number: int, change: Callable[[str], str]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[number - 1] = change(lines[number - 1])
    path.write_text("".join(lines), encoding="utf-8")


def test_bundled_catalog_is_valid_and_complete() -> None:
    source = load_source()
    assert len(source.applications) == 12
    assert len(source.cells) == 50
    assert len(source.papers) == 76
    assert len({cell.cite_key for cell in source.cells}) == 49
    assert len(source.techniques) == 27
    assert [app.name for app in source.applications][:3] == [
        "Sound Event Detection",
        "Keyword Spotting",
        "Text Classification",
    ]
    assert sum(cell.family == "C" for cell in source.cells) == 12
    assert all((cell.family == "C") == (cell.subfamily is not None) for cell in source.cells)


def _unknown_family(source: Path) -> tuple[str, int, str]:
    line = line_of(source / "cells.csv", "Keyword Spotting,B,,huh2020metric")
    edit_line(source / "cells.csv", line, lambda text: text.replace(",B,,", ",D,,"))
    return "cells.csv", line, "unknown family 'D' (expected A, B or C)"


def _unknown_cite_key(source: Path) -> tuple[str, int, str]:
    line = line_of(source / "cells.csv", "mo2020neural")
    edit_line(source / "cells.csv", line, lambda text: text.replace("mo2020neural", "mo2020nowhere"))
    return "cells.csv", line, "cites 'mo2020nowhere', which is not in papers.csv"


def _duplicate_paper_key(source: Path) -> tuple[str, int, str]:
    path = source / "papers.csv"
    first = line_of(path, "snell2017prototypical,")
    copy = path.read_text(encoding="utf-8").splitlines(keepends=True)[first - 1]
    with path.open("a", encoding="utf-8") as handle:
        handle.write(copy.replace("Prototypical Networks", "Prototypical Networks again"))
    line = len(path.read_text(encoding="utf-8").splitlines())
    return "papers.csv", line, f"duplicate cite_key 'snell2017prototypical' (first on line {first})"


def _duplicate_cell(source: Path) -> tuple[str, int, str]:
    path = source / "cells.csv"
    first = line_of(path, "Parsing,A,,guo2019coupling")
    with path.open("a", encoding="utf-8") as handle:
        handle.write("Parsing,A,,guo2019coupling\n")
    line = len(path.read_text(encoding="utf-8").splitlines())
    return "cells.csv", line, f"duplicate cell (Parsing, A, guo2019coupling) (first on line {first})"


def _bad_year(source: Path) -> tuple[str, int, str]:
    line = line_of(source / "papers.csv", "finn2017model,")
    edit_line(source / "papers.csv", line, lambda text: text.replace(",2017,1703.03400", ",20l7,1703.03400"))
    return "papers.csv", line, "bad year '20l7'"


def _missing_column(source: Path) -> tuple[str, int, str]:
    path = source / "papers.csv"
    rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
    rows[0] = rows[0].replace(",venue,", ",")
    path.write_text("".join(rows), encoding="utf-8")
    return "papers.csv", 1, "missing column 'venue'"


def _field_count(source: Path) -> tuple[str, int, str]:
    line = line_of(source / "cells.csv", "Word Embedding,A,,hu2019few")
    edit_line(source / "cells.csv", line, lambda text: text.replace(",,", ","))
    return "cells.csv", line, "3 fields where the header has 4"


def _c_without_subfamily(source: Path) -> tuple[str, int, str]:
    line = line_of(source / "cells.csv", "Net2Net")
    edit_line(source / "cells.csv", line, lambda text: text.replace("Net2Net", ""))
    return "cells.csv", line, "a family C cell needs a subfamily"


def _unknown_application(source: Path) -> tuple[str, int, str]:
    line = line_of(source / "cells.csv", "Multi-model,B,,eloff2019multimodal")
    edit_line(source / "cells.csv", line, lambda text: text.replace("Multi-model", "Multimodal"))
    return "cells.csv", line, "unknown application 'Multimodal'"


def _technique_cites_nothing(source: Path) -> tuple[str, int, str]:
    line = line_of(source / "techniques.csv", "mishra2018simple")
    edit_line(source / "techniques.csv", line, lambda text: text.replace("mishra2018simple", "mishra2018"))
    return "techniques.csv", line, "cites 'mishra2018', which is not in papers.csv"


def _missing_file(source: Path) -> tuple[str, int, str]:
    (source / "techniques.csv").unlink()
    return "techniques.csv", 1, "file is missing"


BREAKAGES = [
    _unknown_family,
    _unknown_cite_key,
    _duplicate_paper_key,
    _duplicate_cell,
    _bad_year,
    _missing_column,
    _field_count,
    _c_without_subfamily,
    _unknown_application,
    _technique_cites_nothing,
    _missing_file,
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.strip("_"))
def test_broken_file_names_file_line_and_problem_and_changes_nothing(
    breakage: Callable[[Path], tuple[str, int, str]], source: Path, db: sqlite_utils.Database
) -> None:
    file_name, line, problem = breakage(source)
    before = dump(db)
    where = re.escape(f"{source / file_name}:{line}: ")
    with pytest.raises(catalog.CatalogValidationError, match=f"^{where}.*{re.escape(problem)}") as caught:
        catalog.ingest(db, source)
    assert "\n" not in str(caught.value)
    assert len(caught.value.problems) == 1, caught.value.problems
    assert dump(db) == before


def test_every_problem_is_collected_and_counted(source: Path) -> None:
    _unknown_family(source)
    _bad_year(source)
    with pytest.raises(catalog.CatalogValidationError, match=r"\(and 1 more problem\)$") as caught:
        load_source(source)
    assert len(caught.value.problems) == 2


def test_unreadable_papers_file_does_not_flood_cells_with_false_references(source: Path) -> None:
    _missing_column(source)
    with pytest.raises(catalog.CatalogValidationError, match="missing column 'venue'") as caught:
        load_source(source)
    assert caught.value.problems == (caught.value.problems[0],)


def test_quoted_multiline_field_keeps_line_numbers_of_later_records(source: Path) -> None:
    path = source / "papers.csv"
    note_line = line_of(path, "finn2017model,")
    edit_line(path, note_line, lambda text: text.rstrip("\n") + '"a note\nover two lines"\n')
    broken = line_of(path, "antoniou2019train,")
    edit_line(path, broken, lambda text: text.replace(",2019,1810.09502", ",1850,1810.09502"))
    with pytest.raises(
        catalog.CatalogValidationError, match="^" + re.escape(f"{path}:{broken}: bad year '1850'")
    ):
        load_source(source)


def test_source_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(catalog.CatalogValidationError, match="not a directory"):
        load_source(tmp_path / "nowhere")


def test_bad_arxiv_id_and_url_are_rejected(source: Path) -> None:
    path = source / "papers.csv"
    line = line_of(path, "finn2017model,")
    edit_line(path, line, lambda text: text.replace(",1703.03400,https://", ",arXiv:1703.03400,ftp://"))
    with pytest.raises(catalog.CatalogValidationError, match=re.escape(f"{path}:{line}: ")) as caught:
        load_source(source)
    problems = caught.value.problems
    assert any("bad arXiv id 'arXiv:1703.03400'" in problem for problem in problems)
    assert any("bad url 'ftp://" in problem for problem in problems)
    assert all(problem.startswith(f"{path}:{line}: ") for problem in problems)


def test_utf8_bom_and_blank_lines_are_tolerated(source: Path) -> None:
    path = source / "applications.csv"
    path.write_text("\ufeff" + path.read_text(encoding="utf-8") + "\n\n", encoding="utf-8")
    assert len(load_source(source).applications) == 12
