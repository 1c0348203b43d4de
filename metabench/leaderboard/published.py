"""The published Omniglot numbers: the methods' (results/published.csv), paired with runs, and the
references that are not methods (results/references.csv: people, Bayesian Program Learning)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from metabench import paths

COLUMNS = (
    "method", "protocol", "ways", "shots", "accuracy", "ci95",
    "transductive", "paper", "table", "protocol_note",
)  # fmt: skip
REFERENCE_COLUMNS = ("protocol", "ways", "shots", "name", "error", "paper", "table", "note")


@dataclass(frozen=True)
class PublishedResult:
    """One number from a paper, in percent; `transductive` is None when the paper does not say.

    `accuracy` is None for a method that no paper reports in this setting: its note says so and why,
    and the boards show "none published" rather than a silent gap.
    """

    method: str
    protocol: str
    ways: int
    shots: int
    accuracy: float | None
    ci95: float | None
    transductive: bool | None
    paper: str
    table: str
    note: str


def load_published(path: Path | None = None) -> tuple[PublishedResult, ...]:
    """Read the published numbers; ValueError naming the line of a malformed row."""
    return _load(path or paths.bundled("published.csv"), COLUMNS, _published_row)


@dataclass(frozen=True)
class PublishedReference:
    """A published result that is not a metabench method (people, Bayesian Program Learning, a model
    no one released): shown on the boards of its setting as a reference, never ranked as a run.

    Lake et al. report error rates, so the file keeps the printed error and the accuracy follows.
    """

    protocol: str
    ways: int
    shots: int
    name: str
    error: float  # percent, as printed
    paper: str
    table: str
    note: str

    @property
    def accuracy(self) -> float:
        return 100.0 - self.error


def load_references(path: Path | None = None) -> tuple[PublishedReference, ...]:
    """Read the published references; ValueError naming the line of a malformed row."""
    return _load(path or paths.bundled("references.csv"), REFERENCE_COLUMNS, _reference_row)


def references_for(
    references: tuple[PublishedReference, ...], protocol: str, ways: int, shots: int
) -> tuple[PublishedReference, ...]:
    """The references of one setting, best first."""
    matching = [r for r in references if (r.protocol, r.ways, r.shots) == (protocol, ways, shots)]
    return tuple(sorted(matching, key=lambda r: r.error))


def _published_row(row: dict[str, str]) -> PublishedResult:
    return PublishedResult(
        method=row["method"],
        protocol=row["protocol"],
        ways=int(row["ways"]),
        shots=int(row["shots"]),
        accuracy=float(row["accuracy"]) if row["accuracy"] else None,
        ci95=float(row["ci95"]) if row["ci95"] else None,
        transductive={"yes": True, "no": False, "": None}[row["transductive"]],
        paper=row["paper"],
        table=row["table"],
        note=row["protocol_note"],
    )


def _reference_row(row: dict[str, str]) -> PublishedReference:
    error = float(row["error"])
    if not 0.0 <= error <= 100.0:
        raise ValueError("an error rate is a percentage")
    return PublishedReference(
        protocol=row["protocol"],
        ways=int(row["ways"]),
        shots=int(row["shots"]),
        name=row["name"],
        error=error,
        paper=row["paper"],
        table=row["table"],
        note=row["note"],
    )


@cache
def _load(path: Path, columns: tuple[str, ...], parse: Callable[[dict[str, str]], Any]) -> tuple[Any, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the published numbers at {path}: {exc.strerror}") from None
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != columns:
        raise ValueError(f"{path}: expected the columns {','.join(columns)}")
    return tuple(_parsed(reader, parse, path))


def _parsed(reader: csv.DictReader[str], parse: Callable[[dict[str, str]], Any], path: Path) -> Iterator[Any]:
    for line, row in enumerate(reader, start=2):
        try:
            yield parse(row)
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}, line {line}: malformed row {row!r}") from None


def find_published(
    published: tuple[PublishedResult, ...],
    method: str,
    protocol: str,
    ways: int,
    shots: int,
    transductive: bool,
) -> PublishedResult | None:
    """The paper's number for this method and setting, preferring the row evaluated like the run.

    Some papers give both a transductive and a non-transductive number (Reptile); the row whose
    evaluation matches the run's is the fair comparison, then a row that does not say.
    """
    candidates = [
        p for p in published if (p.method, p.protocol, p.ways, p.shots) == (method, protocol, ways, shots)
    ]
    for preference in (transductive, None, not transductive):
        for candidate in candidates:
            if candidate.transductive is preference:
                return candidate
    return None
