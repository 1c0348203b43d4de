"""Read one catalog CSV file into numbered records, reporting layout problems as `FILE:LINE: ...`."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Record:
    """One CSV record: the line it starts on and its fields by column name (stripped)."""

    path: Path
    line: int
    fields: dict[str, str]

    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def __getitem__(self, column: str) -> str:
        return self.fields[column]

    def optional(self, column: str) -> str | None:
        value = self.fields[column]
        return value or None


def read_records(path: Path, columns: tuple[str, ...], problems: list[str]) -> list[Record] | None:
    """The records of `path`, whose header must name exactly `columns` (in any order).

    Problems are appended to `problems`. A file that cannot be read or has a bad header yields
    None, so the rules that check records never see fields that do not exist and the rules that
    cross-check files know not to report every reference to it as broken.
    """
    expected = ", ".join(columns)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        problems.append(f"{path}:1: file is missing (the catalog needs it, with columns: {expected})")
        return None
    except UnicodeDecodeError as exc:
        problems.append(f"{path}:1: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8")
        return None
    except OSError as exc:
        problems.append(f"{path}:1: cannot be read ({exc.strerror})")
        return None

    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    header: list[str] | None = None
    header_line = 1
    records: list[Record] = []
    end_of_previous = 0
    try:
        for row in reader:
            start = end_of_previous + 1
            end_of_previous = reader.line_num
            if not row or all(not field.strip() for field in row):
                continue
            if header is None:
                header, header_line = [field.strip() for field in row], start
                if not _header_ok(path, header_line, header, columns, problems):
                    return None
                continue
            if len(row) != len(header):
                problems.append(
                    f"{path}:{start}: {len(row)} fields where the header has {len(header)} "
                    "(quote a field that contains a comma)"
                )
                continue
            records.append(
                Record(path, start, {name: value.strip() for name, value in zip(header, row, strict=True)})
            )
    except csv.Error as exc:
        problems.append(f"{path}:{reader.line_num}: malformed CSV ({exc})")
        return None
    if header is None:
        problems.append(f"{path}:{header_line}: empty file; the first line must be the header: {expected}")
        return None
    return records


def _header_ok(
    path: Path, line: int, header: list[str], columns: tuple[str, ...], problems: list[str]
) -> bool:
    expected = ", ".join(columns)
    before = len(problems)
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.append(f"{path}:{line}: column '{name}' appears twice in the header")
        elif name not in columns:
            problems.append(f"{path}:{line}: unknown column '{name}' (the columns are: {expected})")
        seen.add(name)
    for name in columns:
        if name not in seen:
            problems.append(f"{path}:{line}: missing column '{name}' (the columns are: {expected})")
    return len(problems) == before
