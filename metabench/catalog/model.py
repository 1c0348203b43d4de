"""The catalog's typed records: what the queries return to the CLI and the TUI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from metabench.errors import MetabenchError

FAMILIES = ("A", "B", "C")
FAMILY_LABELS = {"A": "Learning to initialize", "B": "Learning to compare", "C": "Other"}


def family_heading(family: str) -> str:
    """The survey table's column heading, e.g. `(A) Learning to initialize`."""
    return f"({family}) {FAMILY_LABELS[family]}"


class CatalogValidationError(MetabenchError):
    """A catalog source file is wrong; the message reads `FILE:LINE: problem`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(f"{problems[0]}{suffix}")


@dataclass(frozen=True)
class Paper:
    """One bibliographic record."""

    cite_key: str
    short_cite: str
    title: str
    authors: tuple[str, ...]
    venue: str
    year: int
    arxiv: str | None
    url: str | None
    note: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "cite_key": self.cite_key,
            "short_cite": self.short_cite,
            "title": self.title,
            "authors": list(self.authors),
            "venue": self.venue,
            "year": self.year,
            "arxiv": self.arxiv,
            "url": self.url,
            "note": self.note,
        }


@dataclass(frozen=True)
class Cell:
    """One citation in one cell of the survey table (application x family)."""

    application: str
    family: str
    subfamily: str | None
    cite_key: str
    short_cite: str
    title: str
    year: int
    venue: str

    @property
    def label(self) -> str:
        """The citation as the table prints it: C cells carry their subfamily."""
        return f"{self.subfamily}: {self.short_cite}" if self.subfamily else self.short_cite

    def to_dict(self) -> dict[str, object]:
        return {
            "application": self.application,
            "family": self.family,
            "subfamily": self.subfamily,
            "cite_key": self.cite_key,
            "short_cite": self.short_cite,
            "title": self.title,
            "year": self.year,
            "venue": self.venue,
        }


@dataclass(frozen=True)
class Technique:
    """What part of a learning algorithm a method paper makes learnable, and who implements it here."""

    cite_key: str
    learnable_component: str
    family: str | None
    benchmark_method: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "cite_key": self.cite_key,
            "learnable_component": self.learnable_component,
            "family": self.family,
            "benchmark_method": self.benchmark_method,
        }


@dataclass(frozen=True)
class PaperRecord:
    """A paper with the table cells it appears in and its techniques."""

    paper: Paper
    cells: tuple[Cell, ...]
    techniques: tuple[Technique, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "paper": self.paper.to_dict(),
            "cells": [cell.to_dict() for cell in self.cells],
            "techniques": [technique.to_dict() for technique in self.techniques],
        }


@dataclass(frozen=True)
class SurveyRow:
    """One application (row) of the survey table, its cells per family in source order."""

    application: str
    a: tuple[Cell, ...]
    b: tuple[Cell, ...]
    c: tuple[Cell, ...]

    def cells(self, family: str) -> tuple[Cell, ...]:
        return {"A": self.a, "B": self.b, "C": self.c}[family]


@dataclass(frozen=True)
class SurveyTable:
    """The lecture's table: applications in order, each with its A, B and C cells."""

    rows: tuple[SurveyRow, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "columns": {family: family_heading(family) for family in FAMILIES},
            "rows": [
                {
                    "application": row.application,
                    **{family: [cell.to_dict() for cell in row.cells(family)] for family in FAMILIES},
                }
                for row in self.rows
            ],
        }


@dataclass(frozen=True)
class FacetCount:
    """How many table cells, and how many distinct papers, share one facet value."""

    value: str
    cells: int
    papers: int


@dataclass(frozen=True)
class Facets:
    """Counts of the survey table's cells by family, application, year and venue series."""

    families: tuple[FacetCount, ...]
    applications: tuple[FacetCount, ...]
    years: tuple[FacetCount, ...]
    venues: tuple[FacetCount, ...]
    total_cells: int
    total_table_papers: int
    total_papers: int

    def to_dict(self) -> dict[str, object]:
        def counts(items: tuple[FacetCount, ...]) -> list[dict[str, object]]:
            return [{"value": f.value, "cells": f.cells, "papers": f.papers} for f in items]

        return {
            "families": counts(self.families),
            "applications": counts(self.applications),
            "years": counts(self.years),
            "venues": counts(self.venues),
            "totals": {
                "cells": self.total_cells,
                "table_papers": self.total_table_papers,
                "papers": self.total_papers,
            },
        }


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did: the source's size and the rows it inserted, updated and deleted."""

    source: Path
    applications: int
    cells: int
    papers: int
    techniques: int
    inserted: int
    updated: int
    deleted: int

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "applications": self.applications,
            "cells": self.cells,
            "papers": self.papers,
            "techniques": self.techniques,
            "inserted": self.inserted,
            "updated": self.updated,
            "deleted": self.deleted,
        }
