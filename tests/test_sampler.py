"""Episode sampler invariants on images that encode their own class and drawing, plus Lake's fixed runs."""

from __future__ import annotations

import pytest
import torch

from metabench.config import EpisodeSpec
from metabench.data.episodes import EVAL_SEED, EpisodeSampler, OfficialRunsSampler, evaluation_episodes

CHARACTERS, DRAWINGS = 30, 20


def coded_images() -> torch.Tensor:
    """uint8 [30, 20, 28, 28]: top half = the character number + 1, bottom half = the drawing + 100."""
    images = torch.zeros(CHARACTERS, DRAWINGS, 28, 28, dtype=torch.uint8)
    images[:, :, :14] = (torch.arange(CHARACTERS) + 1)[:, None, None, None].to(torch.uint8)
    images[:, :, 14:] = (torch.arange(DRAWINGS) + 100)[None, :, None, None].to(torch.uint8)
    return images


def decode(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(character, drawing) of float images [..., 1, 28, 28] made by coded_images (rotation 0)."""
    raw = (images * 255).round().to(torch.long)
    return raw[..., 0, 0, 0] - 1, raw[..., 0, 27, 0] - 100


SPLIT = torch.tensor([(c, 0) for c in range(3, 25)])  # 22 classes, characters 3..24


@pytest.fixture
def sampler() -> EpisodeSampler:
    return EpisodeSampler(coded_images(), SPLIT)


def test_shapes_dtypes_and_label_ranges(sampler: EpisodeSampler) -> None:
    episode = sampler.sample(6, EpisodeSpec(5, 2, 3), torch.Generator().manual_seed(0))
    assert episode.support.shape == (6, 10, 1, 28, 28) and episode.query.shape == (6, 15, 1, 28, 28)
    assert episode.support.dtype == torch.float32 and episode.support_labels.dtype == torch.long
    assert episode.support_labels.shape == (6, 10) and episode.query_labels.shape == (6, 15)
    assert (episode.ways, episode.shots, episode.queries, episode.batch_size) == (5, 2, 3, 6)
    for labels, per_class in ((episode.support_labels, 2), (episode.query_labels, 3)):
        for task in labels:
            assert torch.bincount(task, minlength=5).tolist() == [per_class] * 5
    assert episode.support_labels[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # class-major support


def test_classes_come_from_the_split_and_labels_map_to_one_class(sampler: EpisodeSampler) -> None:
    episode = sampler.sample(40, EpisodeSpec(5, 1, 4), torch.Generator().manual_seed(1))
    s_char, s_draw = decode(episode.support)
    q_char, q_draw = decode(episode.query)
    assert set(s_char.flatten().tolist()) <= set(range(3, 25))
    for b in range(40):
        mapping = {}
        for chars, labels in ((s_char[b], episode.support_labels[b]), (q_char[b], episode.query_labels[b])):
            for char, label in zip(chars.tolist(), labels.tolist(), strict=True):
                assert mapping.setdefault(label, char) == char  # one class per label, support and query alike
        assert len(set(mapping.values())) == 5  # five distinct classes
        support = set(zip(s_char[b].tolist(), s_draw[b].tolist(), strict=True))
        query = set(zip(q_char[b].tolist(), q_draw[b].tolist(), strict=True))
        assert len(support) == 5 and len(query) == 20 and not support & query  # disjoint drawings


def test_label_assignment_and_query_order_are_random(sampler: EpisodeSampler) -> None:
    episode = sampler.sample(50, EpisodeSpec(5, 1, 3), torch.Generator().manual_seed(2))
    first_class = decode(episode.support)[0][:, 0]
    assert len(set(first_class.tolist())) > 5  # label 0 is not always the same character
    assert len({tuple(q.tolist()) for q in episode.query_labels}) > 40  # the query is shuffled


def test_images_are_ink_one_background_zero() -> None:
    images = torch.zeros(3, 20, 28, 28, dtype=torch.uint8)
    images[:, :, 10:20, 10:20] = 255
    episode = EpisodeSampler(images, torch.tensor([[0, 0], [1, 0], [2, 0]])).sample(
        2, EpisodeSpec(2, 1, 1), torch.Generator().manual_seed(0)
    )
    assert episode.support.unique().tolist() == [0.0, 1.0]


def test_same_seed_same_episodes_different_seed_different(sampler: EpisodeSampler) -> None:
    spec = EpisodeSpec(5, 1, 5)
    a = sampler.sample(8, spec, torch.Generator().manual_seed(3))
    b = sampler.sample(8, spec, torch.Generator().manual_seed(3))
    c = sampler.sample(8, spec, torch.Generator().manual_seed(4))
    assert a.support.equal(b.support) and a.query.equal(b.query) and a.query_labels.equal(b.query_labels)
    assert not a.query.equal(c.query)


def test_evaluation_set_is_fixed_across_calls_and_batch_sizes(sampler: EpisodeSampler) -> None:
    spec = EpisodeSpec(5, 1, 3)

    def gather(batch_size: int, episodes: int = 300, seed: int = EVAL_SEED) -> tuple[torch.Tensor, ...]:
        batches = list(evaluation_episodes(sampler, spec, episodes, batch_size, seed))
        assert all(b.batch_size == batch_size for b in batches[:-1])
        return tuple(
            torch.cat([getattr(b, f) for b in batches]) for f in ("support", "query", "query_labels")
        )

    reference = gather(64)
    assert reference[0].shape[0] == 300
    for batch_size in (1, 7, 300, 1000):
        assert all(x.equal(y) for x, y in zip(gather(batch_size), reference, strict=True))
    assert all(x.equal(y) for x, y in zip(gather(64), reference, strict=True))  # a second call
    assert all(x.equal(y[:100]) for x, y in zip(gather(16, 100), reference, strict=True))  # a prefix
    assert not gather(64, seed=EVAL_SEED + 1)[1].equal(reference[1])


def test_evaluation_does_not_touch_training_randomness(sampler: EpisodeSampler) -> None:
    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    list(evaluation_episodes(sampler, EpisodeSpec(5, 1, 1), 10, 4))
    assert generator.get_state().equal(state)


@pytest.mark.parametrize(
    ("spec", "batch_size", "match"),
    [
        (EpisodeSpec(23, 1, 1), 2, "exceeds the 22 classes"),
        (EpisodeSpec(5, 10, 11), 2, "shots \\+ queries = 21"),
        (EpisodeSpec(5, 0, 1), 2, "--shots must be a positive integer"),
        (EpisodeSpec(-1, 1, 1), 2, "--ways must be a positive integer"),
        (EpisodeSpec(5, 1, 1), 0, "batch_size must be a positive integer"),
    ],
)
def test_impossible_requests_raise_before_any_work(
    sampler: EpisodeSampler, spec: EpisodeSpec, batch_size: int, match: str
) -> None:
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    with pytest.raises(ValueError, match=match):
        sampler.sample(batch_size, spec, generator)
    with pytest.raises(ValueError, match=match):
        evaluation_episodes(sampler, spec, 10, batch_size)  # raised at the call, not at the first batch
    assert generator.get_state().equal(state)


def test_zero_episodes_raise(sampler: EpisodeSampler) -> None:
    with pytest.raises(ValueError, match="episodes must be a positive integer"):
        evaluation_episodes(sampler, EpisodeSpec(5, 1, 1), 0, 4)


def test_rotations_are_counter_clockwise_quarter_turns() -> None:
    images = torch.zeros(1, 20, 28, 28, dtype=torch.uint8)
    images[0, :, 0, 27] = 255  # ink in the top-right corner
    sampler = EpisodeSampler(images, torch.tensor([[0, 0], [0, 1], [0, 2], [0, 3]]))
    x, labels = sampler.sample_labeled(64, torch.Generator().manual_seed(0))
    corners = {0: (0, 27), 1: (0, 0), 2: (27, 0), 3: (27, 27)}  # torch.rot90 turns top-right to top-left
    for image, label in zip(x, labels.tolist(), strict=True):
        assert image[0][corners[label]] == 1.0 and image.sum() == 1.0


def test_sample_labeled_covers_the_classes(sampler: EpisodeSampler) -> None:
    images, labels = sampler.sample_labeled(500, torch.Generator().manual_seed(0))
    assert images.shape == (500, 1, 28, 28) and labels.dtype == torch.long
    assert labels.min() >= 0 and labels.max() < sampler.num_classes
    assert decode(images)[0].equal(SPLIT[labels, 0])  # each label names the image's class
    assert len(labels.unique()) == sampler.num_classes


def test_within_alphabet_tasks_stay_in_one_alphabet() -> None:
    alphabets = torch.tensor([0] * 6 + [1] * 10 + [2] * 4)  # alphabet 2 is too small for 5 ways
    sampler = EpisodeSampler(coded_images(), torch.tensor([(c, 0) for c in range(20)]), alphabets=alphabets)
    episode = sampler.sample(60, EpisodeSpec(5, 1, 1), torch.Generator().manual_seed(0))
    chars = decode(episode.support)[0]
    seen = {int(alphabets[task[0]]) for task in chars}
    assert all(len({int(alphabets[c]) for c in task}) == 1 for task in chars)
    assert seen == {0, 1}
    with pytest.raises(ValueError, match="no alphabet of this split has 11 classes"):
        sampler.sample(1, EpisodeSpec(11, 1, 1), torch.Generator())


def test_bad_constructor_input_is_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        EpisodeSampler(torch.zeros(3, 20, 28, 28), torch.tensor([[0, 0]]))
    with pytest.raises(ValueError, match="rotation 0..3"):
        EpisodeSampler(coded_images(), torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match="character index"):
        EpisodeSampler(coded_images(), torch.tensor([[30, 0]]))


def test_official_runs_are_yielded_exactly() -> None:
    runs, ways = 3, 4
    training = torch.arange(runs * ways, dtype=torch.uint8).view(runs, ways, 1, 1).expand(runs, ways, 28, 28)
    test = (
        (100 + torch.arange(runs * ways, dtype=torch.uint8)).view(runs, ways, 1, 1).expand(runs, ways, 28, 28)
    )
    labels = torch.tensor([[1, 0, 3, 2], [0, 1, 2, 3], [3, 2, 1, 0]])
    sampler = OfficialRunsSampler(training.contiguous(), test.contiguous(), labels)
    assert sampler.spec == EpisodeSpec(4, 1, 1) and sampler.num_classes == 12
    batches = list(evaluation_episodes(sampler, sampler.spec, 100, 2))
    assert [b.batch_size for b in batches] == [2, 1]
    support = torch.cat([b.support for b in batches])
    query = torch.cat([b.query for b in batches])
    assert (support[:, :, 0, 0, 0] * 255).round().long().equal(torch.arange(12).view(3, 4))
    assert (query[:, :, 0, 0, 0] * 255).round().long().equal(100 + torch.arange(12).view(3, 4))
    assert torch.cat([b.query_labels for b in batches]).equal(labels)
    assert batches[0].support_labels.tolist() == [[0, 1, 2, 3]] * 2
    with pytest.raises(ValueError, match="use --ways 4 --shots 1 --queries 1"):
        evaluation_episodes(sampler, EpisodeSpec(4, 1, 15), 20, 2)
    # As an ordinary sampler: each class pairs a training image with its test item (2 drawings).
    episode = sampler.sample(5, EpisodeSpec(3, 1, 1), torch.Generator().manual_seed(0))
    s = (episode.support[:, :, 0, 0, 0] * 255).round().long()
    q = (episode.query[:, :, 0, 0, 0] * 255).round().long()
    for b in range(5):
        for label in range(3):
            a, c = int(s[b, label]), int(q[b][episode.query_labels[b] == label][0])
            small, big = min(a, c), max(a, c)
            run, klass = divmod(small, 4)
            assert big - 100 == run * 4 + int((labels[run] == klass).nonzero())
