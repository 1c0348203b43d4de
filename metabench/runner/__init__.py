"""The benchmark engine: run(spec, sink) trains, validates, checkpoints, tests and records one run.

API
---
    run(spec: RunSpec | None, sink: EventSink, db_path=None, results_dir=None, resume: str | None = None,
        *, data_dir=None, device=None) -> RunRecord

Bad input (unknown method, preset, protocol or --set key, a wrong type, impossible episodes, CUDA
asked for but absent, missing data) raises MetabenchError before any run row exists, after a
`failed` event with run_id null. Once the run exists it always ends with one terminal event and a
RunRecord (metabench.leaderboard.records) whose status is finished, failed or interrupted;
finished runs are stored in the database, then written to <results_dir>/runs/<run_id>.json (when that
copy cannot be written the run still finishes, with a warning). Ctrl-C, SIGTERM or SIGHUP stop it
between two steps, save a checkpoint and record it as interrupted; run(None, sink, resume=RUN_ID)
continues it to the same final metrics as an uninterrupted run (on the same device); the run is
claimed atomically first, so a second resume of it is refused.

Events (`--events jsonl`)
-------------------------
One compact JSON object per line on stdout, flushed as it happens. Every line has the keys
"event", "run_id", "step", "total_steps", "loss", "accuracy", "steps_per_s", "eta_s" (null where
they do not apply); accuracies are fractions in [0, 1]; "step" always counts meta-training steps.

    started      + method, protocol, setting ("5w1s"), queries, preset, seed, device (a readable
                   name), eval_episodes, transductive, resumed; step is where training begins
    progress     loss and accuracy are running means over the last 20 training steps; steps_per_s,
                   eta_s; at most ~10 a second, always for the first and the last step
    validation   accuracy on the fixed validation episodes, + episodes; a checkpoint was just saved
    testing      + episodes_done, episodes; accuracy is the running mean over the tested episodes
    finished     accuracy, + ci95, episodes, transductive, train_time_s, wall_time_s, tasks_per_s,
                   record_file (null with a one-line "warning" when the JSON copy failed)
    failed       + error (one line); run_id is null when the input was refused before the run existed
    interrupted  + checkpoint_step, resumable; resume with `metabench run --resume RUN_ID`

For example:

    {"event":"progress","run_id":"protonet-vinyals-5w1s-20260101T120000-a1b2","step":40,
     "total_steps":200,"loss":0.41,"accuracy":0.87,"steps_per_s":12.5,"eta_s":12.8}

The exit code of `metabench run` is 0 when finished, 1 when failed, 130 when interrupted.

Record (<results>/runs/<run_id>.json, `metabench runs show --json`; RunRecord.to_dict/from_dict)
-----------------------------------------------------------------------------------------------
    {"format": 2, "run_id": "...", "status": "finished|failed|interrupted|running",
     "method": "protonet", "family": "B", "protocol": "vinyals",
     "episode": {"ways": 5, "shots": 1, "queries": 15}, "preset": "quick", "meta_steps": 600,
     "eval_episodes": 1000, "seed": 0,
     "spec": {RunSpec.to_dict(): the source of truth; the flat copies above are for readers},
     "spec_hash": "12 hex", "transductive": false, "eval_seed": 20160613, "eval_batch_size": 25,
     "steps_done": 600, "created_at": "2026-01-01T12:00:00Z", "finished_at": "...",
     "versions": {"metabench", "torch", "cuda", "python"}, "device_type": "cpu|cuda",
     "device_name": "NVIDIA H100 80GB HBM3", "data_digest": "...", "wall_time_s", "train_time_s",
     "eval_time_s", "tasks_per_s" (null when the method samples no episodes), "peak_rss_mb",
     "peak_cuda_mb" (null on the CPU), "accuracy", "ci95" (fractions; 1.96 * std / sqrt(n)),
     "error" (one line, failed runs), "resumable",
     "test_episodes_digest": "16 hex: which classes and drawings the test episodes were",
     "torch_threads": 2, "code_version": "git:<commit>[-dirty] | src:<digest of the package>",
     "preset_overrides": {"meta_steps": 6000, "<--set key>": "<value>"} ({} when the preset was used),
     "curve": [{"step", "loss", "train_accuracy", "val_accuracy"}],
     "episode_accuracies": [one per test episode, in the order of the fixed evaluation set]}
"""

from __future__ import annotations

from metabench.runner.core import run
from metabench.runner.events import (
    CollectingSink,
    Event,
    EventSink,
    Failed,
    FanOutSink,
    Finished,
    Interrupted,
    JsonLinesSink,
    NullSink,
    Progress,
    Started,
    Testing,
    Validation,
    event_to_dict,
)
from metabench.runner.session import EVAL_BATCH_SIZE

__all__ = [
    "EVAL_BATCH_SIZE",
    "CollectingSink",
    "Event",
    "EventSink",
    "Failed",
    "FanOutSink",
    "Finished",
    "Interrupted",
    "JsonLinesSink",
    "NullSink",
    "Progress",
    "Started",
    "Testing",
    "Validation",
    "event_to_dict",
    "run",
]
