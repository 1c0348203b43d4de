"""Siamese Networks: the balanced pair sampler, Koch's distortions, the similarity and the class scores."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from metabench.config import EpisodeSpec
from metabench.data import evaluation_episodes, load_protocol
from metabench.methods.base import TrainingContext
from metabench.methods.compare import siamese
from metabench.methods.compare.siamese import (
    KochConvNet,
    Siamese,
    affine_parameters,
    class_scores,
    distort,
)
from metabench.methods.loader import build_method

pytestmark = pytest.mark.usefixtures("one_thread")
SPEC = EpisodeSpec(5, 2, 3)


@pytest.fixture(scope="module")
def vinyals() -> Any:
    return load_protocol("vinyals")


def build(data: Any, overrides: dict[str, str] | None = None, spec: EpisodeSpec = SPEC) -> Siamese:
    torch.manual_seed(0)
    context = TrainingContext(spec, torch.device("cpu"), data.train, data.val, meta_steps=10)
    method = build_method("siamese", context, "smoke", overrides or {})
    assert isinstance(method, Siamese)
    return method


def fingerprints(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images.reshape(len(images), -1)}


def test_pairs_are_balanced_same_and_different_and_from_the_training_classes_only(vinyals: Any) -> None:
    train = vinyals.train
    pairs = train.sample_pairs(512, torch.Generator().manual_seed(0))
    same = pairs.same.bool()
    assert same.sum() == 256 and same[::2].all() and not same[1::2].any()  # exactly half, interleaved
    assert torch.equal(pairs.first_class[same], pairs.second_class[same])
    assert (pairs.first_class[~same] != pairs.second_class[~same]).all()
    # A same pair shows two different drawings of its class.
    assert all(not torch.equal(a, b) for a, b in zip(pairs.first[same], pairs.second[same], strict=True))
    # Every image is a drawing of the class the pair names, and that class is a training class.
    assert pairs.first_class.max() < train.num_classes and pairs.second_class.max() < train.num_classes
    for images, classes in ((pairs.first, pairs.first_class), (pairs.second, pairs.second_class)):
        for image, cls in zip(images[:32], classes[:32], strict=True):
            own = train._images[cls].float() / 255
            assert any(torch.equal(image[0], drawing) for drawing in own)
    # No image of a test or validation class ever appears in a pair.
    seen = fingerprints(torch.cat([pairs.first, pairs.second]))
    held_out = (
        torch.cat([vinyals.test._images.flatten(0, 1), vinyals.val._images.flatten(0, 1)]).float() / 255
    )
    assert not seen & fingerprints(held_out)
    # Different classes are spread over the split, not clustered (4112 classes, 512 draws).
    assert len(set(pairs.first_class.tolist())) > 400
    again = train.sample_pairs(512, torch.Generator().manual_seed(0))
    assert torch.equal(again.first, pairs.first) and torch.equal(again.second, pairs.second)
    with pytest.raises(ValueError, match="even number of pairs"):
        train.sample_pairs(7, torch.Generator())


def test_distortions_apply_each_of_seven_components_with_probability_one_half() -> None:
    theta = affine_parameters(4000, torch.Generator().manual_seed(0))
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    neutral = (theta - identity).abs().flatten(1).amax(1) < 1e-7
    # All seven components off: probability 2^-7, about 31 of 4000.
    assert 10 < neutral.sum() < 60
    shifts = theta[:, :, 2] * 105 / 2  # back to pixels of a 105x105 image
    assert shifts.abs().max() <= 2.0 + 1e-5 and (shifts == 0).float().mean().item() == pytest.approx(
        0.5, abs=0.03
    )
    images = torch.rand(4000, 1, 28, 28)
    out = distort(images, theta)
    assert torch.allclose(out[neutral], images[neutral], atol=1e-5)  # a neutral transform changes nothing
    assert not torch.allclose(out[~neutral][:10], images[~neutral][:10], atol=1e-3)
    # A pure shift: sampling one pixel to the right moves the image one pixel to the left.
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 10, 10] = 1.0
    one_pixel = torch.tensor([[[1.0, 0.0, 2 / 28], [0.0, 1.0, 0.0]]])
    assert distort(dot, one_pixel)[0, 0, 10, 9] == pytest.approx(1.0, abs=1e-5)


def test_similarity_is_symmetric_and_class_scores_take_each_classs_best_support(vinyals: Any) -> None:
    method = build(vinyals)
    a, b = torch.rand(2, 7, 256).unbind(0)
    torch.testing.assert_close(method.similarity(a, b), method.similarity(b, a))
    # Identical features: the L1 distance is zero, so the logit is the bias alone.
    bias = method.model["distance"].bias
    torch.testing.assert_close(method.similarity(a, a), bias.expand(7))
    logits = torch.tensor([[[0.1, 0.9, -0.3, 0.2]]])  # one query, four support images
    labels = torch.tensor([[1, 0, 1, 0]])
    torch.testing.assert_close(class_scores(logits, labels, 2), torch.tensor([[[0.9, 0.1]]]))


def test_batched_scores_equal_a_per_query_loop_and_chunking_changes_nothing(
    vinyals: Any, monkeypatch
) -> None:
    method = build(vinyals)
    episode = next(iter(evaluation_episodes(vinyals.test, SPEC, 4, batch_size=4)))
    method.model.eval()
    with torch.no_grad():
        batched = method.pair_logits(episode)
        for t in range(episode.batch_size):
            support = method.embed(episode.support[t])
            for q in range(episode.query.shape[1]):
                query = method.embed(episode.query[t, q : q + 1])
                for s in range(len(support)):
                    reference = method.similarity(query[0], support[s])
                    torch.testing.assert_close(batched[t, q, s], reference, rtol=1e-5, atol=1e-5)
        monkeypatch.setattr(siamese, "SCORE_CHUNK_ELEMENTS", 1)  # one task per chunk
        torch.testing.assert_close(method.pair_logits(episode), batched)


def test_sgd_momentum_rises_linearly_from_one_half(vinyals: Any) -> None:
    method = build(vinyals, {"optimizer": "sgd", "momentum": "0.9", "distortions": "false"})
    momenta = []
    generator = torch.Generator().manual_seed(0)
    for _ in range(6):
        method.meta_train_step(vinyals.train, generator)
        momenta.append(method.optimizer.param_groups[0]["momentum"])
    # meta_steps = 10: step s uses 0.5 + 0.4 * s / 10.
    assert momenta == pytest.approx([0.5 + 0.04 * s for s in range(6)])


def test_kochs_network_gives_9216_features_and_the_papers_initialization(vinyals: Any) -> None:
    net = KochConvNet()
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 256 * 6 * 6)
    method = build(vinyals, {"network": "koch", "features": "64"})
    conv = method.model["backbone"].convs[0]
    fully = method.model["features"]
    assert conv.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert fully.weight.std().item() == pytest.approx(0.2, rel=0.05)
    assert conv.bias.mean().item() == pytest.approx(0.5, abs=0.01)
