"""Each protocol's class splits: (character index, rotation) rows with readable ids, checked disjoint."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import torch

from metabench.data.cache import OmniglotCache
from metabench.errors import MetabenchError

VINYALS_PARTS = ("train", "val", "trainval", "test")
# Lake's protocol trains on the background set; its validation classes are carved out of it so that
# train, val and test stay disjoint: the last LAKE_VAL_ALPHABETS background alphabets in alphabetical
# order. On the official data these are Ojibwe_(Canadian_Aboriginal_Syllabics), Sanskrit,
# Syriac_(Estrangelo), Tagalog and Tifinagh: 151 characters, leaving 813 for training.
LAKE_VAL_ALPHABETS = 5


@dataclass(frozen=True)
class Split:
    """One side of a protocol: its classes as (character index, rotation k: k * 90 degrees) rows."""

    name: str
    classes: torch.Tensor  # long [n, 2]
    ids: tuple[str, ...]  # "Alphabet/characterNN/rotDDD", one per class, same order
    alphabets: torch.Tensor  # long [n]: an alphabet number per class, for within-alphabet episodes

    @property
    def characters(self) -> set[int]:
        return set(self.classes[:, 0].tolist())

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ProtocolSplits:
    protocol: str
    train: Split
    val: Split
    test: Split


def class_id(character: str, rotation: int) -> str:
    return f"{character}/rot{rotation * 90:03d}"


def make_split(cache: OmniglotCache, name: str, rows: list[tuple[int, int]]) -> Split:
    """A Split from (character index, rotation) rows of `cache`."""
    alphabets = cache.alphabets
    alphabet_numbers = {alphabet: number for number, alphabet in enumerate(sorted(set(alphabets)))}
    return Split(
        name=name,
        classes=torch.tensor(rows, dtype=torch.long).reshape(-1, 2),
        ids=tuple(class_id(cache.characters[c], k) for c, k in rows),
        alphabets=torch.tensor([alphabet_numbers[alphabets[c]] for c, _ in rows], dtype=torch.long),
    )


def vinyals_rows(cache: OmniglotCache, part: str) -> list[tuple[int, int]]:
    """Parse the shipped Vinyals et al. (2016) list `part` ('Alphabet/characterNN/rotDDD' per line)."""
    if part not in VINYALS_PARTS:
        raise ValueError(f"unknown Vinyals split {part!r}; choose one of {', '.join(VINYALS_PARTS)}")
    text = resources.files("metabench.data").joinpath("splits", "vinyals", f"{part}.txt").read_text()
    index = {name: number for number, name in enumerate(cache.characters)}
    rows = []
    for line in filter(None, map(str.strip, text.splitlines())):
        character, _, rotation = line.rpartition("/")
        if character not in index or rotation not in ("rot000", "rot090", "rot180", "rot270"):
            raise MetabenchError(
                f"the Vinyals split names {line!r}, which this Omniglot does not have; "
                "check the data with `metabench data verify`"
            )
        rows.append((index[character], int(rotation[3:]) // 90))
    return rows


def vinyals_splits(cache: OmniglotCache, train_part: str = "train") -> ProtocolSplits:
    """Vinyals et al.: 1028 / 172 / 423 characters (train / val / test), each in 4 rotations as 4 classes."""
    splits = ProtocolSplits(
        "vinyals",
        make_split(cache, train_part, vinyals_rows(cache, train_part)),
        make_split(cache, "val", vinyals_rows(cache, "val")),
        make_split(cache, "test", vinyals_rows(cache, "test")),
    )
    check_disjoint(splits, allow_train_val_overlap=train_part == "trainval")
    return splits


def lake_splits(cache: OmniglotCache) -> ProtocolSplits:
    """Lake et al.: background characters train (minus the validation alphabets), evaluation ones test."""
    background = sorted({a for a, s in zip(cache.alphabets, cache.sets, strict=True) if s == "background"})
    if len(background) <= LAKE_VAL_ALPHABETS:
        raise MetabenchError(
            f"the background set has only {len(background)} alphabets; it needs the official 30"
        )
    val_alphabets = set(background[-LAKE_VAL_ALPHABETS:])
    train, val, test = [], [], []
    for number, (alphabet, set_name) in enumerate(zip(cache.alphabets, cache.sets, strict=True)):
        if set_name == "evaluation":
            test.append((number, 0))
        else:
            (val if alphabet in val_alphabets else train).append((number, 0))
    splits = ProtocolSplits(
        "lake",
        make_split(cache, "train", train),
        make_split(cache, "val", val),
        make_split(cache, "test", test),
    )
    check_disjoint(splits)
    return splits


def check_disjoint(splits: ProtocolSplits, allow_train_val_overlap: bool = False) -> None:
    """Refuse any character on both sides of train/test (and val/test, train/val): results would be void."""
    pairs = [("train", "test"), ("val", "test")] + ([] if allow_train_val_overlap else [("train", "val")])
    for first, second in pairs:
        a, b = getattr(splits, first), getattr(splits, second)
        shared = a.characters & b.characters
        if shared:
            example = next(i for i, (c, _) in zip(a.ids, a.classes.tolist(), strict=True) if c in shared)
            raise MetabenchError(
                f"protocol {splits.protocol}: {len(shared)} characters are in both {first} and {second} "
                f"(e.g. {example.rpartition('/')[0]}); the split is invalid, so nothing was run"
            )
