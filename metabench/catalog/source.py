"""Parse and validate the catalog source files (applications, cells, papers, techniques)."""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from metabench import paths
from metabench.catalog.csvfile import Record, read_records
from metabench.catalog.model import FAMILIES, CatalogValidationError

APPLICATIONS_FILE = "applications.csv"
CELLS_FILE = "cells.csv"
PAPERS_FILE = "papers.csv"
TECHNIQUES_FILE = "techniques.csv"
SOURCE_FILES = (APPLICATIONS_FILE, CELLS_FILE, PAPERS_FILE, TECHNIQUES_FILE)

APPLICATION_COLUMNS = ("application",)
CELL_COLUMNS = ("application", "family", "subfamily", "cite_key")
PAPER_COLUMNS = ("cite_key", "short_cite", "title", "authors", "venue", "year", "arxiv", "url", "note")
TECHNIQUE_COLUMNS = ("cite_key", "learnable_component", "family", "benchmark_method")

AUTHOR_SEPARATOR = "; "
EARLIEST_YEAR = 1900

# Keys become BibTeX keys and CLI arguments: keep them to characters both accept unquoted.
CITE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_:.+-]*")
ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}(v\d+)?|[a-z-]+(\.[A-Z]{2})?/\d{7}(v\d+)?")
URL = re.compile(r"https?://[^\s{}\"<>]+")
METHOD_NAME = re.compile(r"[a-z0-9][a-z0-9+._-]*")


@dataclass(frozen=True)
class SourceApplication:
    name: str
    position: int


@dataclass(frozen=True)
class SourcePaper:
    cite_key: str
    short_cite: str
    title: str
    authors: str  # normalised to "First Last; First Last"
    venue: str
    year: int
    arxiv: str | None
    url: str | None
    note: str | None


@dataclass(frozen=True)
class SourceCell:
    application: str
    family: str
    subfamily: str | None
    cite_key: str
    position: int


@dataclass(frozen=True)
class SourceTechnique:
    cite_key: str
    learnable_component: str
    family: str | None
    benchmark_method: str | None
    position: int


@dataclass(frozen=True)
class CatalogSource:
    """A validated catalog: every cell and technique cites a paper, every cell an application."""

    directory: Path
    digest: str
    applications: tuple[SourceApplication, ...]
    papers: tuple[SourcePaper, ...]
    cells: tuple[SourceCell, ...]
    techniques: tuple[SourceTechnique, ...]


def bundled_source_dir() -> Path:
    """The catalog shipped with metabench (the wheel's copy, or the repository's catalog/)."""
    return paths.bundled("catalog")


def source_digest(directory: Path) -> str:
    """A hash of the source files' bytes, to tell whether the bundled catalog changed since ingest."""
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        path = directory / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


def load_source(directory: Path | None = None) -> CatalogSource:
    """Read and check the catalog in `directory` (default: the bundled one).

    Raises CatalogValidationError listing every problem found, each as `FILE:LINE: problem`.
    """
    directory = Path(directory) if directory is not None else bundled_source_dir()
    if not directory.is_dir():
        raise CatalogValidationError(
            [f"{directory}:1: not a directory; pass the folder holding {', '.join(SOURCE_FILES)}"]
        )
    problems: list[str] = []
    app_records = read_records(directory / APPLICATIONS_FILE, APPLICATION_COLUMNS, problems)
    paper_records = read_records(directory / PAPERS_FILE, PAPER_COLUMNS, problems)
    cell_records = read_records(directory / CELLS_FILE, CELL_COLUMNS, problems)
    technique_records = read_records(directory / TECHNIQUES_FILE, TECHNIQUE_COLUMNS, problems)
    applications = _applications(app_records or [], problems)
    papers = _papers(paper_records or [], problems)
    # References are checked against every key present, even on a record with another problem,
    # and not at all against an unreadable file: either way each mistake is reported once, not
    # again as a false "not in ..." on every line that cites it.
    app_names = None if app_records is None else {record["application"] for record in app_records}
    paper_keys = None if paper_records is None else {record["cite_key"] for record in paper_records}
    cells = _cells(cell_records or [], app_names, paper_keys, problems)
    techniques = _techniques(technique_records or [], paper_keys, problems)
    if problems:
        raise CatalogValidationError(problems)
    return CatalogSource(
        directory=directory,
        digest=source_digest(directory),
        applications=tuple(applications),
        papers=tuple(papers),
        cells=tuple(cells),
        techniques=tuple(techniques),
    )


def _required(record: Record, columns: tuple[str, ...], problems: list[str]) -> bool:
    missing = [column for column in columns if not record[column]]
    for column in missing:
        problems.append(f"{record.where()}: empty '{column}' (it is required)")
    return not missing


def _first_seen(seen: dict[object, int], key: object, record: Record) -> int | None:
    """The line where `key` was first seen, or None (and remember this one) when it is new."""
    if key in seen:
        return seen[key]
    seen[key] = record.line
    return None


def _applications(records: list[Record], problems: list[str]) -> list[SourceApplication]:
    seen: dict[object, int] = {}
    result = []
    for record in records:
        if not _required(record, APPLICATION_COLUMNS, problems):
            continue
        name = record["application"]
        first = _first_seen(seen, name.casefold(), record)
        if first is not None:
            problems.append(f"{record.where()}: duplicate application '{name}' (first on line {first})")
            continue
        result.append(SourceApplication(name=name, position=len(result) + 1))
    return result


def _papers(records: list[Record], problems: list[str]) -> list[SourcePaper]:
    seen: dict[object, int] = {}
    latest_year = datetime.date.today().year + 1
    result = []
    for record in records:
        if not _required(record, ("cite_key", "short_cite", "title", "authors", "venue", "year"), problems):
            continue
        key, where = record["cite_key"], record.where()
        ok = True
        if not CITE_KEY.fullmatch(key):
            problems.append(
                f"{where}: bad cite_key '{key}' (use letters, digits and _:.+-, starting with a letter)"
            )
            ok = False
        first = _first_seen(seen, key, record)
        if first is not None:
            problems.append(f"{where}: duplicate cite_key '{key}' (first on line {first})")
            ok = False
        year_text = record["year"]
        year = int(year_text) if re.fullmatch(r"\d{4}", year_text) else None
        if year is None or not EARLIEST_YEAR <= year <= latest_year:
            problems.append(
                f"{where}: bad year '{year_text}' (a four-digit year from {EARLIEST_YEAR} to {latest_year})"
            )
            ok = False
        authors = [name.strip() for name in record["authors"].split(";")]
        if any(not name for name in authors):
            problems.append(f"{where}: empty author name (separate authors with '; ')")
            ok = False
        arxiv, url = record.optional("arxiv"), record.optional("url")
        if arxiv is not None and not ARXIV_ID.fullmatch(arxiv):
            problems.append(f"{where}: bad arXiv id '{arxiv}' (like 1703.03400, without 'arXiv:')")
            ok = False
        if url is not None and not URL.fullmatch(url):
            problems.append(f"{where}: bad url '{url}' (an http(s) address without spaces or braces)")
            ok = False
        if ok:
            result.append(
                SourcePaper(
                    cite_key=key,
                    short_cite=record["short_cite"],
                    title=record["title"],
                    authors=AUTHOR_SEPARATOR.join(authors),
                    venue=record["venue"],
                    year=year,  # type: ignore[arg-type]  # checked above
                    arxiv=arxiv,
                    url=url,
                    note=record.optional("note"),
                )
            )
    return result


def _family(record: Record, family: str, problems: list[str]) -> bool:
    if family in FAMILIES:
        return True
    problems.append(f"{record.where()}: unknown family '{family}' (expected A, B or C)")
    return False


def _cells(
    records: list[Record], app_names: set[str] | None, paper_keys: set[str] | None, problems: list[str]
) -> list[SourceCell]:
    seen: dict[object, int] = {}
    result = []
    for record in records:
        if not _required(record, ("application", "family", "cite_key"), problems):
            continue
        application, family, key = record["application"], record["family"], record["cite_key"]
        subfamily, where = record.optional("subfamily"), record.where()
        ok = _family(record, family, problems)
        if app_names is not None and application not in app_names:
            problems.append(f"{where}: unknown application '{application}' (add it to {APPLICATIONS_FILE})")
            ok = False
        if paper_keys is not None and key not in paper_keys:
            problems.append(f"{where}: cites '{key}', which is not in {PAPERS_FILE}")
            ok = False
        if family == "C" and subfamily is None:
            problems.append(f"{where}: a family C cell needs a subfamily (what is learned)")
            ok = False
        if family in ("A", "B") and subfamily is not None:
            problems.append(f"{where}: only family C cells have a subfamily; clear '{subfamily}'")
            ok = False
        first = _first_seen(seen, (application, family, key), record)
        if first is not None:
            problems.append(
                f"{where}: duplicate cell ({application}, {family}, {key}) (first on line {first})"
            )
            ok = False
        if ok:
            result.append(SourceCell(application, family, subfamily, key, position=len(result) + 1))
    return result


def _techniques(
    records: list[Record], paper_keys: set[str] | None, problems: list[str]
) -> list[SourceTechnique]:
    seen: dict[object, int] = {}
    result = []
    for record in records:
        if not _required(record, ("cite_key", "learnable_component"), problems):
            continue
        key, component, where = record["cite_key"], record["learnable_component"], record.where()
        family, method = record.optional("family"), record.optional("benchmark_method")
        ok = family is None or _family(record, family, problems)
        if paper_keys is not None and key not in paper_keys:
            problems.append(f"{where}: cites '{key}', which is not in {PAPERS_FILE}")
            ok = False
        if method is not None and not METHOD_NAME.fullmatch(method):
            problems.append(f"{where}: bad benchmark_method '{method}' (a method name such as maml)")
            ok = False
        first = _first_seen(seen, (key, component), record)
        if first is not None:
            problems.append(f"{where}: duplicate technique ({key}, {component}) (first on line {first})")
            ok = False
        if ok:
            result.append(SourceTechnique(key, component, family, method, position=len(result) + 1))
    return result
