"""One execution of a run, from its first event to its last: train, validate, checkpoint, test, record."""

from __future__ import annotations

import math
import os
import sqlite3
import time
import traceback
from dataclasses import replace
from pathlib import Path

import sqlite_utils
import torch

from metabench.data.episodes import EVAL_SEED, evaluation_digest, evaluation_episodes
from metabench.db import database_error, database_file
from metabench.errors import MetabenchError
from metabench.interrupts import StopRequest, stop_on_signals
from metabench.leaderboard.checks import metric_values
from metabench.leaderboard.portable import write_record_file
from metabench.leaderboard.records import RunRecord
from metabench.leaderboard.stats import mean_ci95
from metabench.leaderboard.store import save_record
from metabench.methods.card import SELECTION_FIELD
from metabench.runid import new_run_id
from metabench.runner import environment as env
from metabench.runner.checkpoint import checkpoint_path, save_checkpoint
from metabench.runner.events import (
    EventSink,
    Failed,
    Finished,
    Interrupted,
    Started,
    Testing,
    Validation,
)
from metabench.runner.selection import ModelSelection
from metabench.runner.setup import Prepared
from metabench.runner.training import CountingSampler, ProgressMeter, TrainingState, curve_interval

EVAL_BATCH_SIZE = 25  # tasks per evaluate() call; fixed so every method sees identical batches
VALIDATION_SEED = EVAL_SEED + 1  # validation episodes come from the val split with their own seed


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite."""


class StoreUnavailable(MetabenchError):
    """The database refused a record; the message says where the result went instead."""


class Session:
    """One execution of a run, from its first event to its last."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        prepared: Prepared,
        sink: EventSink,
        results: Path,
        previous: RunRecord | None,
        checkpoint: dict | None,
    ) -> None:
        self.db = db
        self.db_path = database_file(db)
        self.p = prepared
        self.spec = prepared.spec
        self.method = prepared.method
        self.sink = sink
        self.results = results
        self.resumed = previous is not None
        self.run_id = (
            previous.run_id
            if previous
            else new_run_id(self.spec.method, self.spec.protocol, self.spec.episode.label)
        )
        self.test_episodes_digest = previous.test_episodes_digest if previous else ""
        self.created_at = previous.created_at if previous else env.utc_now()
        self.previous_wall_s = previous.wall_time_s if previous else 0.0
        self.total = self.spec.meta_steps or 0
        self.generator = torch.Generator().manual_seed(self.spec.seed)
        self.state = TrainingState()
        # Which trained state is tested: the last, the best validated, or an ensemble of the best.
        self.selection = ModelSelection(str(self.method.config.get(SELECTION_FIELD, "last")))
        self.tested_step: int | None = None
        self.checkpoint_step: int | None = None
        self.consistent = True  # False while the method's state is between two steps
        self.eval_time_s = 0.0
        self.final_record: RunRecord | None = None
        self.started = time.perf_counter()
        if checkpoint is not None:
            self._restore(checkpoint)

    # --- lifecycle ---------------------------------------------------------------------------

    def execute(self) -> RunRecord:
        env.reset_cuda_peak(self.p.device)
        self._save(self._record("running"), running=True)
        with stop_on_signals() as stop:
            try:
                self.sink.emit(self._started_event())
                self._train(stop)
                self.tested_step = self.selection.select(self.method, self.state.step)
                accuracies = self._test(stop)
                return self._finish(accuracies)
            except KeyboardInterrupt:
                # After the finished record is stored, a late interrupt changes nothing.
                return self.final_record or self._interrupted()
            except NonFiniteLoss as exc:
                kept = f"; checkpoint of step {self.checkpoint_step} kept" if self.checkpoint_step else ""
                return self._failed(f"{exc}{kept}; lower the learning rate with --set")
            except torch.cuda.OutOfMemoryError:
                return self._failed(
                    f"out of GPU memory at step {self.state.step}; "
                    "lower the meta-batch with --set or use --device cpu"
                )
            except StoreUnavailable as exc:
                # The database cannot take even a failed record: say so and stop.
                self.sink.emit(Failed(self.run_id, str(exc), self.state.step, self.total))
                raise
            except sqlite3.Error as exc:
                error = database_error(exc, self.db_path)
                self.sink.emit(Failed(self.run_id, str(error), self.state.step, self.total))
                raise error from None
            except MetabenchError as exc:
                return self._failed(str(exc))
            except Exception as exc:
                if os.environ.get("METABENCH_DEBUG"):
                    traceback.print_exc()
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                return self._failed(f"{type(exc).__name__} at step {self.state.step}: {message}")

    def _started_event(self) -> Started:
        return Started(
            run_id=self.run_id,
            method=self.spec.method,
            protocol=self.spec.protocol,
            setting=self.spec.episode.label,
            queries=self.spec.episode.queries,
            preset=self.spec.preset,
            seed=self.spec.seed,
            device=env.device_name(self.p.device),
            step=self.state.step,
            total_steps=self.total,
            eval_episodes=self.spec.eval_episodes or 0,
            transductive=self.method.transductive,
            resumed=self.resumed,
        )

    # --- training ----------------------------------------------------------------------------

    def _train(self, stop: StopRequest) -> None:
        state, total = self.state, self.total
        meter = ProgressMeter(self.run_id, state.step, total)
        sampler = CountingSampler(self.p.data.train, state)
        interval = curve_interval(total)
        for step in range(state.step + 1, total + 1):
            stop.check()
            self.consistent = False
            began = time.perf_counter()
            stats = self.method.meta_train_step(sampler, self.generator)
            env.synchronize(self.p.device)
            loss, accuracy = float(stats.loss), float(stats.accuracy)
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"loss became {loss} at step {step}")
            # A metric no record could hold fails the run at its first step, not when the record is saved.
            metric_values(stats.metrics, f"{self.p.spec.method}'s step metrics")
            state.add_step(step, stats, time.perf_counter() - began)
            validation_due = step % self.p.validate_every == 0 or step == total
            if step % interval == 0 or validation_due:
                state.close_point()
            if validation_due:
                state.set_validation(self._validate())
                self.selection.offer(step, state.curve[-1].val_accuracy, self.method)
                self._checkpoint()
            self.consistent = True
            if validation_due:
                self.sink.emit(
                    Validation(
                        self.run_id,
                        step,
                        total,
                        state.curve[-1].val_accuracy or 0.0,
                        self.p.validation_episodes,
                    )
                )
                self._save(self._record("running"), running=True)
            event = meter.update(step, replace(stats, loss=loss, accuracy=accuracy))
            if event is not None:
                self.sink.emit(event)

    def _validate(self) -> float:
        episodes = evaluation_episodes(
            self.p.data.val,
            self.spec.episode,
            self.p.validation_episodes,
            EVAL_BATCH_SIZE,
            seed=VALIDATION_SEED,
        )
        values = [self.method.evaluate(episode).detach().float().cpu() for episode in episodes]
        return float(torch.cat(values).mean())

    def _checkpoint(self) -> None:
        state = {
            "run_id": self.run_id,
            "method": self.method.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.p.device.type == "cuda" else [],
            "training": self.state.to_checkpoint(),
            "kept": self.selection.to_checkpoint(),
        }
        save_checkpoint(checkpoint_path(self.run_id), state)
        self.checkpoint_step = self.state.step

    def _restore(self, checkpoint: dict) -> None:
        self.method.load_state_dict(checkpoint["method"])
        self.generator.set_state(checkpoint["generator"])
        torch.set_rng_state(checkpoint["torch_rng"])
        cuda_states = checkpoint.get("cuda_rng") or []
        if self.p.device.type == "cuda" and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        self.state = TrainingState.from_checkpoint(checkpoint["training"])
        self.selection.restore(checkpoint)
        self.checkpoint_step = self.state.step

    # --- testing -----------------------------------------------------------------------------

    def _test(self, stop: StopRequest) -> list[float]:
        episodes = self.spec.eval_episodes or 0
        self.sink.emit(Testing(self.run_id, self.state.step, self.total, 0, episodes, None))
        accuracies: list[float] = []
        began = last_event = time.perf_counter()
        self.test_episodes_digest = evaluation_digest(
            self.p.data.test, self.spec.episode, episodes, EVAL_SEED
        )
        for batch in evaluation_episodes(
            self.p.data.test, self.spec.episode, episodes, EVAL_BATCH_SIZE, seed=EVAL_SEED
        ):
            stop.check()
            # Six decimals hold every k / (N*Q) faithfully and drop float32 noise from the records.
            values = self.selection.evaluate(self.method, batch)
            accuracies.extend(round(a, 6) for a in values.detach().float().cpu().tolist())
            now = time.perf_counter()
            if now - last_event >= 0.1 or len(accuracies) >= episodes:
                last_event = now
                running = sum(accuracies) / len(accuracies)
                self.sink.emit(
                    Testing(self.run_id, self.state.step, self.total, len(accuracies), episodes, running)
                )
        env.synchronize(self.p.device)
        self.eval_time_s = time.perf_counter() - began
        if len(accuracies) != episodes:
            raise MetabenchError(f"the test set gave {len(accuracies)} episode results instead of {episodes}")
        return accuracies

    # --- endings -----------------------------------------------------------------------------

    def _finish(self, accuracies: list[float]) -> RunRecord:
        accuracy, ci95 = mean_ci95(accuracies)
        record = self._record("finished", accuracy=accuracy, ci95=ci95, accuracies=tuple(accuracies))
        # The database first: a results folder that cannot take the JSON copy (unwritable, disk full)
        # must not cost the user the result of every test episode.
        try:
            self._save(record)
        except sqlite3.Error as exc:
            # and a database that cannot take it must not either: the JSON copy is then the only one.
            error = database_error(exc, self.db_path)
            try:
                kept = write_record_file(record, self.results)
            except OSError:
                raise StoreUnavailable(f"{error}; the result of this run could not be kept") from None
            raise StoreUnavailable(
                f"{error}; the result is kept in {kept}: load it with `metabench runs ingest "
                f"{kept.parent}` once the database is writable"
            ) from None
        self.final_record = record
        record_file, warning = None, None
        try:
            record_file = str(write_record_file(record, self.results))
        except OSError as exc:
            warning = (
                f"the result is in the database but its JSON copy could not be written to {self.results} "
                f"({exc.strerror or exc}); write it with: metabench runs write {self.run_id} --results DIR"
            )
        self.sink.emit(
            Finished(
                run_id=self.run_id,
                step=self.state.step,
                total_steps=self.total,
                accuracy=accuracy,
                ci95=ci95,
                episodes=len(accuracies),
                transductive=record.transductive,
                train_time_s=record.train_time_s,
                wall_time_s=record.wall_time_s,
                tasks_per_s=record.tasks_per_s,
                record_file=record_file,
                warning=warning,
            )
        )
        return record

    def _interrupted(self) -> RunRecord:
        # A stop between steps leaves a consistent model: save it, so nothing done is lost. A stop
        # inside a step (a second Ctrl-C) falls back to the previous checkpoint.
        if self.consistent and self.total and self.checkpoint_step != self.state.step:
            self._checkpoint()
        record = self._record("interrupted", resumable=True)
        self._save(record)
        self.sink.emit(Interrupted(self.run_id, self.state.step, self.total, self.checkpoint_step, True))
        return record

    def _failed(self, error: str) -> RunRecord:
        record = self._record("failed", error=error)
        try:
            self._save(record)
        finally:
            self.sink.emit(Failed(self.run_id, error, self.state.step, self.total))
        return record

    def _save(self, record: RunRecord, running: bool = False) -> None:
        save_record(self.db, record, owner_pid=os.getpid() if running else None)

    def _record(
        self,
        status: str,
        accuracy: float | None = None,
        ci95: float | None = None,
        accuracies: tuple[float, ...] = (),
        error: str | None = None,
        resumable: bool = False,
    ) -> RunRecord:
        state = self.state
        return RunRecord(
            run_id=self.run_id,
            status=status,
            spec=self.spec,
            spec_hash=self.spec.spec_hash(),
            family=self.p.card.family,
            transductive=self.method.transductive,
            eval_seed=EVAL_SEED,
            eval_batch_size=EVAL_BATCH_SIZE,
            created_at=self.created_at,
            steps_done=state.step,
            finished_at=None if status == "running" else env.utc_now(),
            versions=env.versions(),
            code_version=env.code_version(),
            torch_threads=torch.get_num_threads(),
            preset_overrides=self.p.preset_overrides,
            test_episodes_digest=self.test_episodes_digest,
            device_type=self.p.device.type,
            device_name=env.device_name(self.p.device),
            data_digest=self.p.data.data_digest,
            wall_time_s=self.previous_wall_s + time.perf_counter() - self.started,
            train_time_s=state.train_time_s,
            eval_time_s=self.eval_time_s,
            tasks_per_s=state.tasks / state.train_time_s if state.tasks and state.train_time_s > 0 else None,
            peak_rss_mb=env.peak_rss_mb(),
            peak_cuda_mb=env.peak_cuda_mb(self.p.device),
            curve=tuple(state.curve),
            accuracy=accuracy,
            ci95=ci95,
            episode_accuracies=accuracies,
            error=error,
            resumable=resumable,
            model_selection=self.selection.selection,
            tested_step=self.tested_step if status == "finished" else None,
        )
