"""Where a key (or a value of a multi-line array) stands in a TOML text: line numbers for one-line errors,
which tomllib's parsed tables no longer carry."""

from __future__ import annotations

import json
import re
from typing import Any


class TomlLines:
    """Finds the line of a key (and of a value inside a multi-line array) in the TOML text."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")
    _PART = re.compile(r"""\s*("([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*(?:\.|$)""")

    def __init__(self, text: str) -> None:
        self.rows: list[tuple[tuple, str | None, str]] = []  # (table, key or None for a header, line text)
        table: tuple = ()
        counts: dict[tuple, int] = {}
        for line in text.splitlines():
            header = self._HEADER.match(line)
            key = self._KEY.match(line)
            if header and not key:
                parts = tuple(
                    next(g for g in m.groups()[1:] if g is not None)
                    for m in self._PART.finditer(header.group(2))
                )
                if header.group(1) == "[[":  # arrays of tables are told apart by their index
                    index = counts.get(parts, 0)
                    counts[parts] = index + 1
                    parts = (*parts, index)
                table = parts
                self.rows.append((table, None, line))
            else:
                self.rows.append((table, key.group(1).strip("\"'") if key else None, line))

    def find(self, table: tuple, key: str | None, value: Any = None) -> int:
        """1-based line of `key` in `table` (of `value` after it when given); the table's header, else 1."""
        header = next(
            (n for n, (where, k, _) in enumerate(self.rows, 1) if where == table and k is None), None
        )
        start = next(
            (n for n, (where, k, _) in enumerate(self.rows, 1) if where == table and k == key and key), None
        )
        if start is None and key is not None:  # a dotted key or an inline table: the key's first mention
            start = next((n for n, (_, k, _) in enumerate(self.rows, 1) if k == key), None)
        if start is None:
            return header or 1
        if value is None:
            return start
        literal = json.dumps(value) if isinstance(value, str) else str(value)
        for number in range(start, len(self.rows) + 1):
            where, k, line = self.rows[number - 1]
            if number > start and (k is not None or self._HEADER.match(line)):
                break
            if re.search(rf"(?<![\w.-]){re.escape(literal)}(?![\w.-])", line) or (
                isinstance(value, str) and f"'{value}'" in line
            ):
                return number
        return start
