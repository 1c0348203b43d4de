"""Reusable TUI widgets: navigation, survey table, live run monitor, run record."""
