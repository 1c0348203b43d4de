"""Third-party methods through the `metabench.methods` entry-point group, as an installed package adds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# A plugin's card, in a module that imports no torch, and its implementation in another.
CARD = """
from dataclasses import replace

from metabench.methods.baselines.cards import PIXELS_NN

PIXELS_COSINE = replace(
    PIXELS_NN,
    name="pixels-cosine",
    paper="a third-party plugin",
    implementation="metabench_plugin_example.method:PixelsCosine",
)
"""
METHOD = '''
from metabench.methods.baselines.pixels_nn import PixelsNN
from metabench_plugin_example.card import PIXELS_COSINE


class PixelsCosine(PixelsNN):
    """A plugin's method: raw-pixel nearest neighbour under the cosine metric."""

    card = PIXELS_COSINE
'''

ENTRY_POINTS = """[metabench.methods]
pixels-cosine = metabench_plugin_example.card:PIXELS_COSINE
broken = metabench_plugin_missing:Nothing
"""


def install_plugin(site: Path) -> None:
    """What `pip install` leaves for a package declaring two methods, one of them broken: its module and
    its dist-info folder with entry_points.txt, on a folder that PYTHONPATH then names."""
    package = site / "metabench_plugin_example"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "card.py").write_text(CARD)
    (package / "method.py").write_text(METHOD)
    info = site / "metabench_plugin_example-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: metabench-plugin-example\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


def plugin_env(site: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }


def metabench(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metabench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=plugin_env(site),
    )


def test_an_installed_plugin_method_is_listed_and_runs_and_a_broken_one_is_named(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site)
    listed = metabench(site, "methods", "--json")
    assert listed.returncode == 0, listed.stderr
    methods = {row["name"]: row for row in json.loads(listed.stdout)}
    assert methods["pixels-cosine"]["paper"] == "a third-party plugin"
    assert {"maml", "protonet", "pixels-nn"} <= set(methods)  # the built-in ones are all still there
    # The broken entry is named once, in one line, and takes nothing else down.
    [warning] = [line for line in listed.stderr.splitlines() if "plugin" in line]
    assert warning.startswith("warning: method plugin 'broken'") and "metabench_plugin_missing" in warning
    # Listing reads the cards alone: neither the implementation nor torch is imported.
    probe = (
        "import sys; from metabench.methods.registry import get_card; get_card('pixels-cosine'); "
        "print('torch' in sys.modules, 'metabench_plugin_example.method' in sys.modules)"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=plugin_env(site), check=True
    )
    assert imported.stdout.split() == ["False", "False"]

    db, results = tmp_path / "runs.db", tmp_path / "results"
    ran = metabench(
        site, "run", "pixels-cosine", "--preset", "smoke", "--eval-episodes", "8", "--device", "cpu",
        "--events", "none", "--json", "--db", str(db), "--results", str(results),
        "--set", "metric=cosine",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["method"] == "pixels-cosine" and record["status"] == "finished"
    assert record["run_id"].startswith("pixels-cosine-vinyals-5w1s-") and 0.2 < record["accuracy"] <= 1


def test_without_the_plugin_the_method_is_unknown(tmp_path: Path) -> None:
    refused = metabench(tmp_path, "run", "pixels-cosine", "--db", str(tmp_path / "runs.db"))
    assert refused.returncode == 1 and "unknown method 'pixels-cosine'" in refused.stderr
