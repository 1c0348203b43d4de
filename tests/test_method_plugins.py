"""Third-party methods through the `metabench.methods` entry-point group, as an installed package adds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PLUGIN = '''
from metabench.methods.baselines.pixels_nn import PixelsNN


class PixelsCosine(PixelsNN):
    """A plugin's method: raw-pixel nearest neighbour under the cosine metric."""

    name = "pixels-cosine"
    paper = "a third-party plugin"
'''

ENTRY_POINTS = """[metabench.methods]
pixels-cosine = metabench_plugin_example:PixelsCosine
broken = metabench_plugin_missing:Nothing
"""


def install_plugin(site: Path) -> None:
    """What `pip install` leaves for a package declaring two methods, one of them broken: its module and
    its dist-info folder with entry_points.txt, on a folder that PYTHONPATH then names."""
    (site / "metabench_plugin_example.py").write_text(PLUGIN)
    info = site / "metabench_plugin_example-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: metabench-plugin-example\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


def metabench(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "metabench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": path},
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
