"""Checks of JSON values that name the field they read: types, ranges, one-line text, timestamps.

Each check takes (value, key) and returns the value or raises a one-line ValueError saying what the
field must hold; the record schema (records.py) is built from them.
"""

from __future__ import annotations

import math
import re
import reprlib
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

MAX_COUNT = 2**63 - 1  # SQLite's INTEGER is 64-bit signed

Kind = Callable[[Any, str], Any]

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TIMESTAMP_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
MAX_LINE = 200
MAX_FLOAT = sys.float_info.max  # NaN and the infinities fail the comparisons with it


def bad(key: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{key!r} must be {expected}, got {shown(value)}")


def shown(value: Any) -> str:
    """A short repr: the value may be a megabyte of text or nested a thousand levels deep."""
    return reprlib.repr(value)


def required(data: Mapping[str, Any], key: str) -> Any:
    if key not in data:
        raise ValueError(f"missing {key!r}")
    return data[key]


def optional(kind: Kind) -> Kind:
    def check(value: Any, key: str) -> Any:
        return None if value is None else kind(value, key)

    return check


def boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise bad(key, "true or false", value)
    return value


def int_in(minimum: int, maximum: int = MAX_COUNT) -> Kind:
    def check(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise bad(key, f"a whole number in [{minimum}, {maximum}]", value)
        return value

    return check


count = int_in(0)
positive = int_in(1)


def number_in(minimum: float, maximum: float, expected: str) -> Kind:
    def check(value: Any, key: str) -> float:
        # Comparing before converting: float() of an integer of 400 digits raises OverflowError.
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not -MAX_FLOAT <= value <= MAX_FLOAT
            or not minimum <= value <= maximum
        ):
            raise bad(key, expected, value)
        return float(value)

    return check


finite = number_in(-math.inf, math.inf, "a finite number")
non_negative = number_in(0.0, math.inf, "a finite number >= 0")
fraction = number_in(0.0, 1.0, "a fraction in [0, 1]")


def line(value: Any, key: str) -> str:
    """A short one-line string (it lands in tables and one-line messages)."""
    if not isinstance(value, str) or len(value) > MAX_LINE or not value.isprintable():
        raise bad(key, f"one line of text (at most {MAX_LINE} characters)", value)
    return value


def text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise bad(key, "a string", value)
    return value


def matching(pattern: re.Pattern[str], expected: str) -> Kind:
    def check(value: Any, key: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise bad(key, expected, value)
        return value

    return check


def choice(choices: tuple[str, ...]) -> Kind:
    def check(value: Any, key: str) -> str:
        if value not in choices:
            raise bad(key, f"one of {', '.join(choices)}", value)
        return value

    return check


def timestamp(value: Any, key: str) -> str:
    # Fixed width, as runs sort by it as text; strptime then refuses a 31st of February.
    try:
        if not TIMESTAMP_SHAPE.fullmatch(value):
            raise ValueError
        datetime.strptime(value, TIMESTAMP_FORMAT)
    except (TypeError, ValueError):
        raise bad(key, "a UTC time like 2026-01-01T12:00:00Z", value) from None
    return value


def listed(data: Mapping[str, Any], key: str) -> list[Any]:
    value = required(data, key)
    if not isinstance(value, list):
        raise bad(key, "a list", value)
    return value


METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_METRICS = 16  # named scalars a method may report per step; a curve is read by people


def metric_values(value: Any, key: str) -> dict[str, float]:
    """A method's named step scalars: at most MAX_METRICS snake_case names, each a finite number."""
    if not isinstance(value, Mapping) or len(value) > MAX_METRICS:
        raise bad(key, f"an object of at most {MAX_METRICS} named numbers", value)
    for name in value:
        if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
            raise bad(key, "snake_case names of at most 40 characters", name)
    return {name: finite(number, f"{key} {name}") for name, number in value.items()}
