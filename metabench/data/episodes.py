"""Sample N-way K-shot episode batches by tensor indexing on the device, reproducibly from a CPU generator."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from metabench.config import EpisodeSpec
from metabench.data.episode import Episode

EVAL_SEED = 20_160_613  # fixed seed of the evaluation episodes (the date of Vinyals et al.'s arXiv v1)
_EVAL_CHUNK = 128  # evaluation episodes are drawn in fixed chunks, so batch_size cannot change them


@dataclass(frozen=True)
class Pairs:
    """A batch of image pairs for verification (Koch et al.'s same/different task).

    first, second: float [B, 1, H, W]; same: float [B], 1.0 where both show the same class;
    first_class, second_class: long [B], indices into the sampler's classes (on the CPU).
    """

    first: torch.Tensor
    second: torch.Tensor
    same: torch.Tensor
    first_class: torch.Tensor
    second_class: torch.Tensor


@dataclass(frozen=True)
class _Draw:
    """The CPU indices of a batch of tasks: which class and drawing fills each support and query slot."""

    support_class: torch.Tensor  # long [B, N*K], indices into the sampler's classes
    support_drawing: torch.Tensor  # long [B, N*K]
    query_class: torch.Tensor  # long [B, N*Q]
    query_drawing: torch.Tensor  # long [B, N*Q]
    query_labels: torch.Tensor  # long [B, N*Q]

    def rows(self, start: int, stop: int) -> _Draw:
        return _Draw(*(t[start:stop] for t in vars(self).values()))

    @staticmethod
    def cat(parts: list[_Draw]) -> _Draw:
        return _Draw(*(torch.cat(ts) for ts in zip(*(vars(p).values() for p in parts), strict=True)))


class EpisodeSampler:
    """Holds one split's images on `device` (rotations applied once) and draws episodes from them.

    Every random number comes from the caller's CPU `torch.Generator`; indices are drawn on the CPU and
    then moved, so a seed gives the same episodes on CPU and GPU. Within a task the N classes are distinct,
    the class-to-label assignment is random, support and query drawings are disjoint, the support is laid
    out class-major (slot n*K + k holds label n) and the query order is shuffled.

    With `alphabets` (an alphabet number per class), every task takes its N classes from one alphabet
    (chosen uniformly among alphabets with at least N classes): Lake's harder within-alphabet episodes.
    """

    def __init__(
        self,
        images: torch.Tensor,
        classes: torch.Tensor,
        device: torch.device | str = "cpu",
        *,
        alphabets: torch.Tensor | None = None,
    ):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be uint8 [characters, drawings, H, W], got {images.dtype} {images.shape}"
            )
        classes = torch.as_tensor(classes, dtype=torch.long).cpu().reshape(-1, 2)
        if len(classes) == 0:
            raise ValueError("a sampler needs at least one class")
        if (
            classes[:, 0].min() < 0
            or classes[:, 0].max() >= len(images)
            or not ((classes[:, 1] >= 0) & (classes[:, 1] < 4)).all()
        ):
            raise ValueError("classes must be (character index < len(images), rotation 0..3) rows")
        self.device = torch.device(device)
        self.classes = classes
        self.num_classes = len(classes)
        self.drawings = images.shape[1]
        self._images = _rotated(images.to(self.device), classes)  # uint8 [classes, drawings, H, W]
        self._alphabets = None if alphabets is None else torch.as_tensor(alphabets, dtype=torch.long).cpu()
        if self._alphabets is not None and self._alphabets.shape != (self.num_classes,):
            raise ValueError("alphabets needs one entry per class")

    @property
    def within_alphabet(self) -> bool:
        return self._alphabets is not None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Channels, height and width of one image as `sample` returns it."""
        return (1, *self._images.shape[2:])

    def check(self, spec: EpisodeSpec, batch_size: int = 1) -> None:
        """Raise ValueError when this sampler cannot produce `batch_size` tasks shaped `spec`."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        spec.validate(self.num_classes)
        if spec.shots + spec.queries > self.drawings:
            raise ValueError(
                f"shots + queries = {spec.shots + spec.queries} but this split has only {self.drawings} "
                "drawings per class; lower --shots or --queries"
            )
        if self._alphabets is not None and not len(self._eligible_alphabets(spec.ways)):
            raise ValueError(f"no alphabet of this split has {spec.ways} classes for a within-alphabet task")

    def sample(self, batch_size: int, spec: EpisodeSpec, generator: torch.Generator) -> Episode:
        """A batch of `batch_size` random tasks."""
        self.check(spec, batch_size)
        return self._gather(self._draw(batch_size, spec, generator), spec)

    def sample_labeled(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random single images for supervised pre-training: float [B, 1, H, W] and long labels."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        classes = torch.randint(self.num_classes, (batch_size,), generator=generator)
        drawings = torch.randint(self.drawings, (batch_size,), generator=generator)
        rows = (classes * self.drawings + drawings).to(self.device)
        flat = self._images.view(self.num_classes * self.drawings, -1).index_select(0, rows)
        return _to_float(flat).view(batch_size, 1, *self._images.shape[2:]), classes.to(self.device)

    def sample_pairs(self, batch_size: int, generator: torch.Generator) -> Pairs:
        """Balanced same/different pairs of this split's classes: even rows show two distinct drawings of
        one class, odd rows drawings of two distinct classes (uniform over classes and drawings)."""
        if not isinstance(batch_size, int) or batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size must be an even number of pairs, at least 2, got {batch_size!r}")
        if self.num_classes < 2 or self.drawings < 2:
            raise ValueError("pairs need at least two classes with two drawings each")
        first_class = torch.randint(self.num_classes, (batch_size,), generator=generator)
        # A different class: shifting by 1..C-1 (mod C) is uniform over the other classes.
        shift = torch.randint(1, self.num_classes, (batch_size,), generator=generator)
        same = torch.arange(batch_size) % 2 == 0
        second_class = torch.where(same, first_class, (first_class + shift) % self.num_classes)
        drawings = torch.rand(batch_size, self.drawings, generator=generator).argsort(dim=1)[:, :2]
        rows = torch.stack([first_class, second_class], dim=1) * self.drawings + drawings  # [B, 2]
        flat = self._images.view(self.num_classes * self.drawings, -1).index_select(
            0, rows.flatten().to(self.device)
        )
        images = _to_float(flat).view(batch_size, 2, 1, *self._images.shape[2:])
        return Pairs(images[:, 0], images[:, 1], same.float().to(self.device), first_class, second_class)

    def evaluation_batches(
        self, spec: EpisodeSpec, episodes: int, batch_size: int, seed: int
    ) -> Iterator[Episode]:
        """The fixed evaluation episodes in batches; see `evaluation_episodes`. Validates before returning."""
        self.check(spec, batch_size)
        if not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
        return self._evaluation(spec, episodes, batch_size, seed)

    def evaluation_digest(self, spec: EpisodeSpec, episodes: int, seed: int) -> str:
        """A digest of the evaluation episodes' identity: which character, rotation and drawing fills every
        support and query slot, and each query's label. Equal digests mean the very same test tasks."""
        self.check(spec)
        digest = hashlib.sha256(f"{spec.ways}w{spec.shots}s{spec.queries}q:{episodes}".encode())
        for draw in self._evaluation_draws(spec, episodes, _EVAL_CHUNK, seed):
            for slots, drawings in (
                (draw.support_class, draw.support_drawing),
                (draw.query_class, draw.query_drawing),
            ):
                digest.update(self.classes[slots].numpy().tobytes())  # (character, rotation) per slot
                digest.update(drawings.numpy().tobytes())
            digest.update(draw.query_labels.numpy().tobytes())
        return digest.hexdigest()[:16]

    def _evaluation(self, spec: EpisodeSpec, episodes: int, batch_size: int, seed: int) -> Iterator[Episode]:
        for draw in self._evaluation_draws(spec, episodes, batch_size, seed):
            yield self._gather(draw, spec)

    def _evaluation_draws(
        self, spec: EpisodeSpec, episodes: int, batch_size: int, seed: int
    ) -> Iterator[_Draw]:
        generator = torch.Generator().manual_seed(seed)
        pending: list[_Draw] = []
        held = drawn = 0
        while drawn < episodes or held:
            while held < batch_size and drawn < episodes:
                # Always a whole chunk, so fewer episodes are a prefix of more and batch_size changes nothing.
                take = min(_EVAL_CHUNK, episodes - drawn)
                pending.append(self._draw(_EVAL_CHUNK, spec, generator).rows(0, take))
                held, drawn = held + take, drawn + take
            draw = _Draw.cat(pending)
            count = min(batch_size, held)
            yield draw.rows(0, count)
            pending, held = [draw.rows(count, held)], held - count

    def _eligible_alphabets(self, ways: int) -> torch.Tensor:
        assert self._alphabets is not None
        numbers, counts = self._alphabets.unique(return_counts=True)
        return numbers[counts >= ways]

    def _draw(self, batch_size: int, spec: EpisodeSpec, generator: torch.Generator) -> _Draw:
        """All the random choices of a batch, on the CPU."""
        b, n, k, q = batch_size, spec.ways, spec.shots, spec.queries
        keys = torch.rand(b, self.num_classes, generator=generator)
        if self._alphabets is not None:
            eligible = self._eligible_alphabets(n)
            chosen = eligible[torch.randint(len(eligible), (b,), generator=generator)]
            keys.masked_fill_(self._alphabets[None, :] != chosen[:, None], 2.0)  # other alphabets sort last
        # The n smallest of uniform keys: n distinct classes in random order, so label j is a random class.
        classes = keys.topk(n, dim=1, largest=False).indices  # [b, n]
        drawings = torch.rand(b, n, self.drawings, generator=generator).argsort(dim=2)[:, :, : k + q]
        order = torch.rand(b, n * q, generator=generator).argsort(dim=1)  # shuffles the query
        query_class = classes[:, :, None].expand(b, n, q).reshape(b, n * q)
        query_labels = torch.arange(n)[None, :, None].expand(b, n, q).reshape(b, n * q)
        return _Draw(
            support_class=classes[:, :, None].expand(b, n, k).reshape(b, n * k),
            support_drawing=drawings[:, :, :k].reshape(b, n * k),
            query_class=query_class.gather(1, order),
            query_drawing=drawings[:, :, k:].reshape(b, n * q).gather(1, order),
            query_labels=query_labels.gather(1, order),
        )

    def _gather(self, draw: _Draw, spec: EpisodeSpec) -> Episode:
        """One indexing operation on the device turns the indices into image batches."""
        b, n, k = len(draw.support_class), spec.ways, spec.shots
        classes = torch.cat([draw.support_class, draw.query_class], dim=1)
        drawings = torch.cat([draw.support_drawing, draw.query_drawing], dim=1)
        # index_select on a flat [classes * drawings, H*W] view: much faster than 2-D advanced indexing.
        rows = (classes * self.drawings + drawings).flatten().to(self.device)
        flat = self._images.view(self.num_classes * self.drawings, -1).index_select(0, rows)
        images = _to_float(flat).view(
            b, classes.shape[1], 1, *self._images.shape[2:]
        )  # [b, n*(k+q), 1, H, W]
        support_labels = (
            torch.arange(n, device=self.device).repeat_interleave(k).expand(b, n * k).contiguous()
        )
        return Episode(
            support=images[:, : n * k],
            support_labels=support_labels,
            query=images[:, n * k :],
            query_labels=draw.query_labels.to(self.device),
            ways=n,
            shots=k,
            queries=spec.queries,
        )


class OfficialRunsSampler(EpisodeSampler):
    """Lake et al.'s 20 one-shot runs: evaluation yields them exactly as published, one task per run.

    Each run is a 20-way 1-shot task with one query per class (its 20 test items, in item order, labelled
    by class_labels.txt); the support is the runs' training images, class01 .. class20 as labels 0 .. 19.
    As an ordinary sampler it draws random tasks from the runs' 400 classes (2 drawings each).
    """

    def __init__(self, training: torch.Tensor, test: torch.Tensor, labels: torch.Tensor, device="cpu"):
        runs, ways = labels.shape
        by_class = test.gather(
            1, labels.argsort(dim=1)[:, :, None, None].expand_as(test)
        )  # test item of each class
        images = torch.stack([training, by_class], dim=2).reshape(runs * ways, 2, *training.shape[2:])
        classes = torch.stack([torch.arange(runs * ways), torch.zeros(runs * ways, dtype=torch.long)], dim=1)
        super().__init__(images, classes, device)
        self.spec = EpisodeSpec(ways=ways, shots=1, queries=1)
        self._support = _to_float(training.to(self.device)).unsqueeze(2)
        self._query = _to_float(test.to(self.device)).unsqueeze(2)
        self._labels = labels.to(self.device)

    def evaluation_batches(
        self, spec: EpisodeSpec, episodes: int, batch_size: int, seed: int
    ) -> Iterator[Episode]:
        """The official runs (at most `episodes` of them) in order; the seed plays no part."""
        if spec != self.spec:
            raise ValueError(
                f"lake-runs evaluates Lake's official {self.spec.ways}-way 1-shot runs, one query per class: "
                f"use --ways {self.spec.ways} --shots 1 --queries 1"
            )
        super().check(spec, batch_size)
        if not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
        return self._runs(min(episodes, len(self._labels)), batch_size)

    def evaluation_digest(self, spec: EpisodeSpec, episodes: int, seed: int) -> str:
        """A digest of the official runs tested (images and labels, in order); the seed plays no part."""
        count = min(episodes, len(self._labels))
        digest = hashlib.sha256(f"lake-runs:{count}".encode())
        for tensor in (self._support[:count], self._query[:count], self._labels[:count]):
            digest.update(tensor.cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def _runs(self, count: int, batch_size: int) -> Iterator[Episode]:
        ways = self.spec.ways
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            labels = torch.arange(ways, device=self.device).expand(stop - start, ways).contiguous()
            yield Episode(
                self._support[start:stop],
                labels,
                self._query[start:stop],
                self._labels[start:stop],
                ways,
                1,
                1,
            )


def evaluation_episodes(
    sampler: EpisodeSampler, spec: EpisodeSpec, episodes: int, batch_size: int, seed: int = EVAL_SEED
) -> Iterator[Episode]:
    """The fixed evaluation set: the same tasks for every call and method given (spec, episodes, seed).

    Whatever `batch_size`, the episodes are the same; fewer episodes are a prefix of more. Impossible
    requests raise ValueError here, at the call, not at the first batch.
    """
    return sampler.evaluation_batches(spec, episodes, batch_size, seed)


def evaluation_digest(
    sampler: EpisodeSampler, spec: EpisodeSpec, episodes: int, seed: int = EVAL_SEED
) -> str:
    """The identity of `evaluation_episodes(sampler, spec, episodes, ...)`: runs with equal digests were
    tested on the same tasks, which is what pairing them episode by episode requires."""
    return sampler.evaluation_digest(spec, episodes, seed)


def _rotated(images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Each class's drawings, rotated counter-clockwise by k * 90 degrees (as the Vinyals split's rotDDD)."""
    characters, rotations = classes[:, 0].to(images.device), classes[:, 1].to(images.device)
    out = torch.empty((len(classes), *images.shape[1:]), dtype=images.dtype, device=images.device)
    for k in range(4):
        rows = (rotations == k).nonzero().squeeze(1)
        if len(rows):
            out.index_copy_(0, rows, torch.rot90(images.index_select(0, characters[rows]), k, dims=(2, 3)))
    return out


# Intensity of each uint8 value, computed once on the CPU and copied to each device as it is needed.
# A table rather than a division because CUDA divides by a scalar as a multiplication by its
# reciprocal, which differs from the CPU's division in the last bit for about half the grey values:
# the same seed would then give different episodes on CPU and GPU.
_INTENSITY = torch.arange(256, dtype=torch.float32) / 255
_intensity_on: dict[torch.device, torch.Tensor] = {}


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (ink 255) to float32 in [0, 1] (ink 1.0), bit for bit the same on every device."""
    table = _intensity_on.get(images.device)
    if table is None:
        table = _intensity_on[images.device] = _INTENSITY.to(images.device)
    return table.index_select(0, images.flatten().int()).view(images.shape)
