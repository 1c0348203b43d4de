"""How the TUI prints numbers, durations and statuses (one place, so every screen agrees)."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

STATUS_STYLES = {
    "finished": "bold green",
    "running": "bold cyan",
    "training": "bold cyan",
    "validation": "bold cyan",
    "testing": "bold cyan",
    "starting": "cyan",
    "resuming": "cyan",
    "cancelling": "yellow",
    "interrupted": "bold yellow",
    "failed": "bold red",
}


def percent(value: float | None, digits: int = 2) -> str:
    """A value already in percent, e.g. '98.70'; '-' when unknown."""
    return "-" if value is None else f"{value:.{digits}f}"


def fraction(value: float | None, digits: int = 2) -> str:
    """A fraction in [0, 1] shown in percent, e.g. 0.987 -> '98.70'; '-' when unknown."""
    return "-" if value is None else f"{100.0 * value:.{digits}f}"


def percent_ci(accuracy: float | None, ci95: float | None, digits: int = 2) -> str:
    """'98.70 ± 0.40' from values in percent (leaderboard rows); '-' when there is no accuracy."""
    if accuracy is None:
        return "-"
    return percent(accuracy, digits) + ("" if ci95 is None else f" ± {ci95:.{digits}f}")


def fraction_ci(accuracy: float | None, ci95: float | None, digits: int = 2) -> str:
    """'98.70 ± 0.40' from fractions (run records and events); '-' when there is no accuracy."""
    if accuracy is None:
        return "-"
    return percent_ci(100.0 * accuracy, None if ci95 is None else 100.0 * ci95, digits)


def signed(value: float | None, digits: int = 2) -> str:
    """A difference in percentage points with its sign: '+0.31', '-2.10'."""
    return "-" if value is None else f"{value:+.{digits}f}"


def duration(seconds: float | None) -> str:
    """'42s', '3m05s', '2h10m'; '-' when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def rate(steps_per_s: float | None) -> str:
    """Steps per second with sensible precision."""
    if steps_per_s is None:
        return "-"
    return f"{steps_per_s:.1f}" if steps_per_s >= 10 else f"{steps_per_s:.2f}"


def status_text(status: str) -> Text:
    """A run status, coloured."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def when(timestamp: str | float | datetime | None) -> str:
    """A start time as 'YYYY-MM-DD HH:MM' whatever form the store kept it in."""
    if timestamp is None or timestamp == "":
        return "-"
    if isinstance(timestamp, datetime):
        moment = timestamp
    elif isinstance(timestamp, int | float):
        moment = datetime.fromtimestamp(timestamp)
    else:
        try:
            moment = datetime.fromisoformat(str(timestamp))
        except ValueError:
            return str(timestamp)[:16]
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")
