"""The layer rules hold at run time: light modules never drag in torch or a UI library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "textual", "typer", "rich")


def loaded_after_import(module: str) -> set[str]:
    code = (
        f"import json, sys; import {module}; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize(
    "module",
    [
        "metabench.catalog",
        "metabench.leaderboard",
        "metabench.db",
        "metabench.config",
        "metabench.paths",
        "metabench.methods.registry",  # every built-in method's card, schema and presets
    ],
)
def test_light_core_modules_load_no_torch_and_no_ui(module: str) -> None:
    assert loaded_after_import(module) == set()


def test_import_linter_contracts_hold() -> None:
    result = subprocess.run(["lint-imports"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "broken" not in result.stdout.lower().replace("0 broken", "")
