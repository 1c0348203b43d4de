"""The runner's entry point: a protocol name in; train, val and test samplers on the device out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from metabench.config import PROTOCOLS, EpisodeSpec
from metabench.data.cache import OmniglotCache, load_cache
from metabench.data.episodes import EpisodeSampler, OfficialRunsSampler
from metabench.data.splits import Split, lake_splits, vinyals_splits
from metabench.errors import MetabenchError


@dataclass(frozen=True)
class ProtocolData:
    """Everything a run needs from the data: three samplers, the data digest and the class ids to record."""

    protocol: str
    train: EpisodeSampler
    val: EpisodeSampler
    test: EpisodeSampler
    data_digest: str
    train_class_ids: list[str]
    test_class_ids: list[str]
    val_class_ids: list[str] = field(default_factory=list)
    test_spec: EpisodeSpec | None = None  # an episode shape the test set imposes (lake-runs: 20w1s1q)


@dataclass(frozen=True)
class SideCounts:
    """One side (train, val or test) of a protocol: how many classes, characters and alphabets."""

    classes: int
    characters: int
    alphabets: int


@dataclass(frozen=True)
class ProtocolSummary:
    """What a protocol trains, validates and tests on, counted from the same splits a run uses."""

    protocol: str
    description: str
    train: SideCounts
    val: SideCounts
    test: SideCounts


PROTOCOL_DESCRIPTIONS = {
    "vinyals": "Vinyals et al. 2016; each character in 4 rotations, as 4 classes",
    "lake": "Lake et al. 2015; background / evaluation alphabets (5 held out to validate)",
    "lake-within": "as lake; each task's classes from one alphabet",
    "lake-runs": "as lake; tested on Lake's 20 official 20-way 1-shot runs",
}


def resolve_device(device: torch.device | str) -> torch.device:
    """A torch.device, refusing CUDA where there is none with a one-line error."""
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise MetabenchError(f"unknown device {device!r} ({exc}); use cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise MetabenchError(
            "CUDA was asked for but this machine has no usable CUDA device; use --device cpu"
        )
    return resolved


def load_protocol(
    protocol: str,
    device: torch.device | str = "cpu",
    data_dir: Path | None = None,
    *,
    cache_dir: Path | None = None,
) -> ProtocolData:
    """Load (building if needed) the Omniglot cache and return `protocol`'s samplers on `device`."""
    if protocol not in PROTOCOLS:
        raise MetabenchError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    resolved = resolve_device(device)
    cache = load_cache(data_dir, cache_dir)
    if protocol == "vinyals":
        splits = vinyals_splits(cache)
    else:
        splits = lake_splits(cache)
    within = protocol == "lake-within"
    train, val = (_sampler(cache, split, resolved, within) for split in (splits.train, splits.val))
    if protocol != "lake-runs":
        test = _sampler(cache, splits.test, resolved, within)
        return ProtocolData(
            protocol,
            train,
            val,
            test,
            cache.data_digest(),
            list(splits.train.ids),
            list(splits.test.ids),
            list(splits.val.ids),
        )
    runs = cache.runs
    if runs is None:
        raise MetabenchError(
            "protocol lake-runs needs all_runs.zip in the data folder: run `metabench data download`, "
            "or `metabench data import PATH` with a folder holding it"
        )
    shared = run_characters(cache) & (splits.train.characters | splits.val.characters)
    if shared:
        raise MetabenchError(
            f"{len(shared)} characters of Lake's runs are also training characters (e.g. "
            f"{cache.characters[min(shared)]}); the data is not the official Omniglot: check it with "
            "`metabench data verify`"
        )
    runs_test = OfficialRunsSampler(runs.training, runs.test, runs.labels, resolved)
    ways = runs.labels.shape[1]
    test_ids = [f"lake-runs/{name}/class{c + 1:02d}" for name in runs.names for c in range(ways)]
    return ProtocolData(
        protocol,
        train,
        val,
        runs_test,
        cache.data_digest(include_runs=True),
        list(splits.train.ids),
        test_ids,
        list(splits.val.ids),
        test_spec=runs_test.spec,
    )


def describe_protocols(
    data_dir: Path | None = None, *, cache_dir: Path | None = None
) -> list[ProtocolSummary]:
    """Every protocol's class, character and alphabet counts (building the cache if needed)."""
    cache = load_cache(data_dir, cache_dir)
    vinyals, lake = vinyals_splits(cache), lake_splits(cache)  # the lake variants share one split
    summaries = []
    for protocol in PROTOCOLS:
        splits = vinyals if protocol == "vinyals" else lake
        train, val, test = (
            _counts(cache, len(split), split.characters) for split in (splits.train, splits.val, splits.test)
        )
        if protocol == "lake-runs":
            if cache.runs is None:
                continue  # all_runs.zip is optional; without it the protocol cannot run
            test = _counts(cache, cache.runs.labels.numel(), run_characters(cache))
        summaries.append(ProtocolSummary(protocol, PROTOCOL_DESCRIPTIONS[protocol], train, val, test))
    return summaries


def _counts(cache: OmniglotCache, classes: int, characters: set[int]) -> SideCounts:
    return SideCounts(classes, len(characters), len({cache.alphabets[c] for c in characters}))


def run_characters(cache: OmniglotCache) -> set[int]:
    """The characters whose drawings Lake's runs show, found by 64-bit pixel fingerprints."""
    assert cache.runs is not None
    pixels = cache.images[0, 0].numel()  # 784: a multiple of 8, so each image reads as 98 int64 words
    weights = torch.randint(-(2**62), 2**62, (pixels // 8,), generator=torch.Generator().manual_seed(0))

    def keys(images: torch.Tensor) -> torch.Tensor:  # a 64-bit fingerprint per image; overflow just wraps
        return (images.reshape(-1, pixels).contiguous().view(torch.int64) * weights).sum(dim=1)

    runs = torch.cat([cache.runs.training, cache.runs.test])
    found = torch.isin(keys(cache.images), keys(runs)).nonzero().squeeze(1)
    return set((found // cache.images.shape[1]).tolist())


def _sampler(
    cache: OmniglotCache, split: Split, device: torch.device, within_alphabet: bool
) -> EpisodeSampler:
    return EpisodeSampler(
        cache.images, split.classes, device, alphabets=split.alphabets if within_alphabet else None
    )
