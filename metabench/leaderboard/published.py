"""The published Omniglot numbers (results/published.csv) and the lookup that pairs them with runs."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from metabench import paths

COLUMNS = (
    "method", "protocol", "ways", "shots", "accuracy", "ci95",
    "transductive", "paper", "table", "protocol_note",
)  # fmt: skip


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
    return _load(path or paths.bundled("published.csv"))


@cache
def _load(path: Path) -> tuple[PublishedResult, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the published numbers at {path}: {exc.strerror}") from None
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"{path}: expected the columns {','.join(COLUMNS)}")
    results = []
    for line, row in enumerate(reader, start=2):
        try:
            results.append(
                PublishedResult(
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
            )
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}, line {line}: malformed row {row!r}") from None
    return tuple(results)


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
