"""The real Omniglot: import, the cache's contents, the protocols' splits (one cache build a session)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from metabench.config import EpisodeSpec
from metabench.data.cache import OmniglotCache, load_cache
from metabench.data.episode import Episode
from metabench.data.episodes import _to_float, evaluation_episodes
from metabench.data.install import MANIFEST_NAME, import_data, info
from metabench.data.protocols import ProtocolData, load_protocol, run_characters
from metabench.data.splits import ProtocolSplits, check_disjoint, lake_splits, make_split, vinyals_splits
from metabench.errors import MetabenchError


@pytest.fixture(scope="session")
def real_cache(isolated_home: Path, omniglot_dir: Path) -> OmniglotCache:
    """The session's cache, built from the shared zips by the first test that needs it."""
    return load_cache(omniglot_dir)


@pytest.fixture(scope="session")
def vinyals(real_cache: OmniglotCache) -> ProtocolData:
    return load_protocol("vinyals")


def test_import_verifies_registers_and_reports(
    real_cache: OmniglotCache, omniglot_dir: Path, tmp_path: Path
) -> None:
    report = import_data(omniglot_dir, tmp_path / "data")
    sets = report.sets
    assert (
        sets["background"]["alphabets"],
        sets["background"]["characters"],
        sets["background"]["images"],
    ) == (
        30,
        964,
        19_280,
    )
    assert (
        sets["evaluation"]["alphabets"],
        sets["evaluation"]["characters"],
        sets["evaluation"]["images"],
    ) == (
        20,
        659,
        13_180,
    )
    assert (sets["runs"]["runs"], sets["runs"]["images"]) == (20, 800)
    # The shared zips are repackaged (other md5s), so the content check vouched for them.
    assert {entry["verified_by"] for entry in sets.values()} == {"content"}
    assert {name: entry["digest"] for name, entry in sets.items()} == real_cache.set_digests
    assert report.manifest_written and (tmp_path / "data" / MANIFEST_NAME).is_file()
    shown = info(tmp_path / "data")
    assert shown["totals"] == {"images": 32_460, "characters": 1_623, "alphabets": 50}
    assert shown["cache"]["status"] == "current" and shown["installed"]
    assert shown["sets"]["background"]["source"] == str(omniglot_dir.resolve())


@pytest.mark.slow
def test_a_fresh_build_from_the_real_zips_matches_the_session_cache(
    real_cache: OmniglotCache, omniglot_dir: Path, tmp_path: Path
) -> None:
    """Decodes all 33,260 images again into a private cache (tens of seconds on a busy 2-core machine)."""
    report = import_data(omniglot_dir, tmp_path / "data", tmp_path / "cache")
    assert not report.cache_reused
    fresh = load_cache(tmp_path / "data", tmp_path / "cache")
    assert fresh.images.equal(real_cache.images) and fresh.runs is not None and real_cache.runs is not None
    assert fresh.runs.test.equal(real_cache.runs.test)


def test_cache_layout_and_pixels(real_cache: OmniglotCache) -> None:
    images = real_cache.images
    assert images.shape == (1623, 20, 28, 28) and images.dtype == torch.uint8
    assert real_cache.sets[:964] == ("background",) * 964 and real_cache.sets[964:] == ("evaluation",) * 659
    assert real_cache.characters[0] == "Alphabet_of_the_Magi/character01"
    assert real_cache.characters[964] == "Angelic/character01"
    assert len(set(real_cache.alphabets)) == 50
    assert images.max() == 255 and 0.03 < images.float().mean() / 255 < 0.2  # thin ink on a dark ground
    assert images[..., 0, :].float().mean() < 1  # the border is background
    # Known quirk of Omniglot: Braille/character01 drawings _03 and _19 are pixel-identical.
    braille = real_cache.characters.index("Braille/character01")
    assert images[braille, 2].equal(images[braille, 18]) and not images[braille, 2].equal(images[braille, 3])
    assert real_cache.runs is not None
    assert real_cache.runs.training.shape == real_cache.runs.test.shape == (20, 20, 28, 28)
    assert all(sorted(row) == list(range(20)) for row in real_cache.runs.labels.tolist())


def test_vinyals_split(real_cache: OmniglotCache, vinyals: ProtocolData) -> None:
    data = vinyals
    assert (data.train.num_classes, data.val.num_classes, data.test.num_classes) == (4112, 688, 1692)
    assert (
        len(data.train_class_ids) == 4112
        and len(data.test_class_ids) == 1692
        and len(data.val_class_ids) == 688
    )
    assert data.train_class_ids[:2] == ["Angelic/character01/rot000", "Angelic/character01/rot090"]
    for sampler in (data.train, data.val, data.test):
        rotations = torch.bincount(sampler.classes[:, 1], minlength=4)
        assert rotations.tolist() == [sampler.num_classes // 4] * 4
    characters = [set(s.classes[:, 0].tolist()) for s in (data.train, data.val, data.test)]
    assert [len(c) for c in characters] == [1028, 172, 423]
    assert (
        not characters[0] & characters[2]
        and not characters[1] & characters[2]
        and not characters[0] & characters[1]
    )
    trainval = vinyals_splits(real_cache, "trainval")
    assert len(trainval.train) == 4800
    assert data.data_digest == real_cache.data_digest() and len(data.data_digest) == 16


def test_vinyals_rotations_are_the_rotated_drawings(real_cache: OmniglotCache, vinyals: ProtocolData) -> None:
    data = vinyals
    images, labels = data.test.sample_labeled(16, torch.Generator().manual_seed(0))
    for image, label in zip(images, labels.tolist(), strict=True):
        character, k = data.test.classes[label].tolist()
        candidates = torch.rot90(real_cache.images[character], k, dims=(1, 2)).float() / 255
        assert any(image[0].equal(c) for c in candidates)


def test_lake_split(real_cache: OmniglotCache) -> None:
    data = load_protocol("lake")
    assert (data.train.num_classes, data.val.num_classes, data.test.num_classes) == (813, 151, 659)
    assert data.train.num_classes + data.val.num_classes == 964  # the background set, split in two
    assert (data.train.classes[:, 1] == 0).all() and (data.test.classes[:, 1] == 0).all()  # no rotations
    val_alphabets = {i.split("/")[0] for i in data.val_class_ids}
    assert val_alphabets == {
        "Ojibwe_(Canadian_Aboriginal_Syllabics)",
        "Sanskrit",
        "Syriac_(Estrangelo)",
        "Tagalog",
        "Tifinagh",
    }
    assert {real_cache.sets[c] for c in data.test.classes[:, 0].tolist()} == {"evaluation"}


def test_lake_within_alphabet_episodes(real_cache: OmniglotCache) -> None:
    data = load_protocol("lake-within")
    episode = data.test.sample(8, EpisodeSpec(20, 1, 1), torch.Generator().manual_seed(0))
    assert episode.support.shape == (8, 20, 1, 28, 28)
    assert data.test.within_alphabet and not load_protocol("lake").test.within_alphabet


def test_lake_runs_are_the_published_runs(real_cache: OmniglotCache, omniglot_dir: Path) -> None:
    data = load_protocol("lake-runs")
    assert data.test_spec == EpisodeSpec(20, 1, 1) and data.test.num_classes == 400
    assert data.data_digest != load_protocol("lake").data_digest  # the runs are part of what it saw
    assert data.test_class_ids[0] == "lake-runs/run01/class01"
    episodes = list(evaluation_episodes(data.test, data.test_spec, 1000, 8))
    assert [e.batch_size for e in episodes] == [8, 8, 4]
    labels = torch.cat([e.query_labels for e in episodes])
    with zipfile.ZipFile(omniglot_dir / "all_runs.zip") as zf:
        first = zf.read("run01/class_labels.txt").decode().split()
    expected = [int(target[-6:-4]) - 1 for target in first[1::2]]  # ".../classNN.png" -> NN - 1
    assert labels[0].tolist() == expected
    # Every run drawing is an evaluation-set drawing, so training on the background set is disjoint from it.
    characters = run_characters(real_cache)
    assert {real_cache.sets[c] for c in characters} == {"evaluation"} and 20 <= len(characters) <= 400


def test_overlapping_splits_are_refused(real_cache: OmniglotCache) -> None:
    splits = lake_splits(real_cache)
    leaky = ProtocolSplits(
        "lake",
        make_split(real_cache, "train", [(0, 0), (965, 1)]),
        splits.val,
        make_split(real_cache, "test", [(965, 0)]),
    )
    with pytest.raises(
        MetabenchError, match=r"1 characters are in both train and test \(e.g. Angelic/character02\)"
    ):
        check_disjoint(leaky)


def test_unknown_protocol_and_missing_cuda_are_one_line_errors(real_cache: OmniglotCache) -> None:
    with pytest.raises(MetabenchError, match="unknown protocol 'omniglot'; choose one of vinyals, lake"):
        load_protocol("omniglot")
    if not torch.cuda.is_available():
        with pytest.raises(MetabenchError, match="CUDA was asked for"):
            load_protocol("lake", "cuda")


def test_evaluation_episodes_survive_a_reload(real_cache: OmniglotCache) -> None:
    spec = EpisodeSpec(5, 1, 15)
    first = next(iter(evaluation_episodes(load_protocol("lake").test, spec, 50, 50)))
    second = next(iter(evaluation_episodes(load_protocol("lake").test, spec, 50, 25)))
    assert first.query[:25].equal(second.query) and first.query_labels[:25].equal(second.query_labels)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_seed_same_episodes_on_cpu_and_gpu(real_cache: OmniglotCache) -> None:
    """Bit for bit: training batches, the fixed test set, pre-training images and Lake's runs."""
    spec = EpisodeSpec(5, 1, 15)
    cpu, gpu = load_protocol("lake-runs", "cpu"), load_protocol("lake-runs", "cuda")

    def same(a: Episode, b: Episode) -> None:
        assert b.query.device.type == "cuda"
        for name in ("support_labels", "query_labels", "support", "query"):
            assert getattr(a, name).equal(getattr(b, name).cpu()), f"{name} differs between CPU and GPU"

    same(
        cpu.train.sample(16, spec, torch.Generator().manual_seed(7)),
        gpu.train.sample(16, spec, torch.Generator().manual_seed(7)),
    )
    for a, b in zip(
        evaluation_episodes(cpu.val, spec, 300, 100),
        evaluation_episodes(gpu.val, spec, 300, 100),
        strict=True,
    ):
        same(a, b)
    runs_spec = cpu.test_spec
    assert runs_spec is not None
    for a, b in zip(
        evaluation_episodes(cpu.test, runs_spec, 20, 20),
        evaluation_episodes(gpu.test, runs_spec, 20, 20),
        strict=True,
    ):
        same(a, b)
    images, labels = cpu.train.sample_labeled(64, torch.Generator().manual_seed(3))
    gpu_images, gpu_labels = gpu.train.sample_labeled(64, torch.Generator().manual_seed(3))
    assert images.equal(gpu_images.cpu()) and labels.equal(gpu_labels.cpu())


def test_intensities_are_exact_quotients() -> None:
    """The uint8-to-float table holds the correctly rounded k / 255 (what the GPU must reproduce)."""
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    expected = (torch.arange(256, dtype=torch.float64) / 255).to(torch.float32).view(1, 1, 16, 16)
    assert _to_float(values).equal(expected)
    assert _to_float(values).shape == values.shape and _to_float(values).dtype == torch.float32
