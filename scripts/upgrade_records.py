"""Upgrade format-1 run records to format 2 by deriving what format 1 did not store, never by guessing.

    python3 scripts/upgrade_records.py results/runs

- test_episodes_digest: the test episodes are a pure function of the protocol's data, the episode shape,
  the number of episodes and the evaluation seed, all in the record; the digest is computed from them,
  and only when the record's data digest equals the data on this machine.
- preset_overrides: the resolved budget compared with the preset's (as the runner does), plus --set keys.
- torch_threads and code_version stay unknown (null, ""): a record cannot tell them afterwards.
Format-2 records are left as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from metabench.data.episodes import evaluation_digest
from metabench.data.protocols import load_protocol
from metabench.leaderboard.portable import read_record_file, write_record_file
from metabench.methods.registry import get_card


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of <run_id>.json records, e.g. results/runs")
    folder = parser.parse_args().folder
    protocols: dict[str, object] = {}
    for path in sorted(folder.glob("*.json")):
        if json.loads(path.read_text()).get("format") != 1:
            continue
        record = read_record_file(path)
        spec = record.spec
        if spec.protocol not in protocols:
            protocols[spec.protocol] = load_protocol(spec.protocol, "cpu")
        data = protocols[spec.protocol]
        if record.data_digest != data.data_digest:
            print(f"{path.name}: tested on other data ({record.data_digest}); left as it is", file=sys.stderr)
            continue
        method = get_card(spec.method)
        preset = method.preset_for(spec.preset, spec.episode)
        overrides: dict[str, object] = {}
        if method.needs_training and spec.meta_steps != preset.meta_steps:
            overrides["meta_steps"] = spec.meta_steps
        if spec.eval_episodes != preset.eval_episodes:
            overrides["eval_episodes"] = spec.eval_episodes
        overrides |= dict(spec.overrides)
        digest = evaluation_digest(data.test, spec.episode, record.eval_episodes, record.eval_seed)
        upgraded = replace(record, test_episodes_digest=digest, preset_overrides=overrides)
        write_record_file(upgraded, path.parent.parent)
        print(f"{path.name}: test episodes {digest}, overrides {overrides or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
