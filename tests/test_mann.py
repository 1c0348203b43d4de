"""MANN: causality, LRUA by hand, non-transduction, relabelling, predict purity, resume, learning."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state, random_context

from metabench.config import EpisodeSpec
from metabench.data.episode import Episode
from metabench.methods.card import Config
from metabench.methods.other.cards import MANN
from metabench.methods.other.mann import Mann, MannNet, lrua

SMALL = EpisodeSpec(5, 1, 3)
# Small enough that a training step takes milliseconds: for the mechanics, not for learning.
TINY = {
    "meta_batch": "2",
    "train_queries": "2",
    "controller": "16",
    "memory_slots": "12",
    "memory_width": "6",
}


def make(episode: EpisodeSpec = SMALL, preset: str = "smoke", overrides: dict | None = None, seed: int = 0):
    config = MANN.make_config(preset, TINY if overrides is None else overrides, episode)
    torch.manual_seed(seed)
    return Mann(config, random_context(episode, characters=10))


def net_config(**values: int) -> Config:
    """The paper's config with some sizes changed, for the network alone."""
    return MANN.make_config("paper", {key: str(value) for key, value in values.items()}, SMALL)


def random_episode(spec: EpisodeSpec, batch: int = 3, seed: int = 0) -> Episode:
    """Random images; class-major support labels and shuffled query labels, as the sampler lays them out."""
    g = torch.Generator().manual_seed(seed)
    support_labels = torch.arange(spec.ways).repeat_interleave(spec.shots).expand(batch, -1)
    query_labels = torch.rand(batch, spec.ways * spec.queries, generator=g).argsort(-1) % spec.ways
    return Episode(
        torch.rand(batch, spec.ways * spec.shots, 1, 28, 28, generator=g),
        support_labels.contiguous(),
        torch.rand(batch, spec.ways * spec.queries, 1, 28, 28, generator=g),
        query_labels,
        spec.ways,
        spec.shots,
        spec.queries,
    )


# --- the recurrent model --------------------------------------------------------------------------


def test_an_output_depends_on_earlier_steps_only() -> None:
    torch.manual_seed(0)
    net = MannNet(784, 5, net_config(controller=32, memory_slots=16, memory_width=8))
    images, labels = torch.rand(2, 8, 784), torch.randint(5, (2, 8))
    logits, _ = net.run(images, labels)
    changed = images.clone()
    changed[:, 4] = torch.rand(2, 784)
    after, _ = net.run(changed, labels)
    assert torch.equal(after[:, :4], logits[:, :4])
    assert not torch.allclose(after[:, 4:], logits[:, 4:])  # every later step sees the change
    # y_t is an input of step t + 1 only: the step that predicts it cannot see it.
    relabelled = labels.clone()
    relabelled[:, 4] = (labels[:, 4] + 1) % 5
    after, _ = net.run(images, relabelled)
    assert torch.equal(after[:, :5], logits[:, :5])
    assert not torch.allclose(after[:, 5:], logits[:, 5:])


def test_lrua_step_against_a_hand_computation() -> None:
    gamma, slots = 0.95, 6
    memory = torch.arange(18, dtype=torch.double).view(1, slots, 3) / 10 - 0.8
    usage = torch.tensor([[0.5, 0.1, 0.9, 0.0, 0.3, 0.7]], dtype=torch.double)  # least used: 3, then 1
    prev_read = torch.softmax(torch.randn(1, 2, slots, dtype=torch.double), -1)
    key, add = torch.randn(1, 2, 3, dtype=torch.double), torch.randn(1, 2, 3, dtype=torch.double)
    gate = torch.tensor([[[0.3], [0.8]]], dtype=torch.double)
    new_memory, read, write, new_usage = lrua(memory, usage, prev_read, key, add, gate, gamma)

    least_used = torch.tensor([0, 1, 0, 1, 0, 0], dtype=torch.double)  # the 2 (= heads) least-used slots
    expected_write = [gate[0, h] * prev_read[0, h] + (1 - gate[0, h]) * least_used for h in range(2)]
    expected_memory = memory[0].clone()
    expected_memory[3] = 0  # the least-used slot is erased first
    for h in range(2):
        for s in range(slots):
            expected_memory[s] += expected_write[h][s] * add[0, h]
    expected_read = []
    for h in range(2):
        cosine = [
            key[0, h] @ expected_memory[s] / (key[0, h].norm() * expected_memory[s].norm())
            for s in range(slots)
        ]
        expected_read.append(torch.softmax(torch.stack(cosine), 0))
    assert torch.allclose(write[0], torch.stack(expected_write))
    assert torch.allclose(new_memory[0], expected_memory)
    assert torch.allclose(read[0], torch.stack(expected_read), atol=1e-6)  # epsilon under the root
    expected_usage = gamma * usage[0] + sum(expected_read) + sum(expected_write)
    assert torch.allclose(new_usage[0], expected_usage, atol=1e-6)
    assert torch.allclose(read.sum(-1), torch.ones(1, 2, dtype=torch.double))


def test_a_closed_gate_overwrites_exactly_the_least_used_slot() -> None:
    memory = torch.rand(1, 5, 4) + 1
    usage = torch.tensor([[0.7, 0.6, 0.2, 0.9, 0.4]])
    add = torch.rand(1, 1, 4)
    gate = torch.zeros(1, 1, 1)  # all weight on the least-used slot
    new_memory, _, write, _ = lrua(memory, usage, torch.full((1, 1, 5), 0.2), add, add, gate, 0.95)
    assert torch.equal(write[0, 0], torch.tensor([0.0, 0, 1, 0, 0]))
    assert torch.equal(new_memory[0, 2], add[0, 0])  # erased, then written: nothing of the old content
    assert torch.equal(new_memory[0, [0, 1, 3, 4]], memory[0, [0, 1, 3, 4]])


def test_usage_ties_are_broken_by_slot_and_read_weights_sum_to_one() -> None:
    torch.manual_seed(0)
    net = MannNet(784, 5, net_config(controller=32, memory_slots=16, memory_width=8, read_heads=3))
    state = net.initial_state(2, torch.zeros(1))
    # The initial usage is 1 at slot 0 and 0 elsewhere: the least-used slots are 1, 2, 3.
    _, (_, _, _, read_w, usage, memory) = net.step(state, torch.rand(2, 784), torch.zeros(2, 5))
    assert (memory[:, :4] != 1e-6).all()  # slot 0 by the gate (the initial read weights), 1 to 3 least used
    assert (memory[:, 4:] == 1e-6).all()
    assert (usage[:, 1:4] > 0.5).all() and (usage[:, 4:] < 0.5).all()
    _, state = net.run(torch.rand(2, 7, 784), torch.randint(5, (2, 7)))
    assert torch.allclose(state[3].sum(-1), torch.ones(2, 3))


def test_query_readout_equals_a_separate_step_per_query() -> None:
    torch.manual_seed(0)
    net = MannNet(784, 5, net_config(controller=32, memory_slots=16, memory_width=8)).double()
    images, labels = torch.rand(3, 6, 784, dtype=torch.double), torch.randint(5, (3, 6))
    _, state = net.run(images, labels)
    queries = torch.rand(3, 4, 784, dtype=torch.double)
    together = net.continue_each(state, labels[:, -1], queries)
    previous = F.one_hot(labels[:, -1], 5).double()
    one_by_one = torch.stack([net.step(state, queries[:, j], previous)[0] for j in range(4)], 1)
    assert torch.allclose(together, one_by_one, atol=1e-12)


# --- the method -----------------------------------------------------------------------------------


def test_relabelling_permutes_predictions_of_a_consistently_permuted_model() -> None:
    """A label's input column and output row are learned per label index, so MANN is not equivariant
    to relabelling by itself (not even untrained: the random init is not symmetric). What holds is
    that permuting the labels and, consistently, those weights permutes the predictions."""
    method = make(EpisodeSpec(5, 2, 3))
    episode = random_episode(EpisodeSpec(5, 2, 3), batch=4)
    perm = torch.tensor([3, 0, 4, 1, 2])
    relabelled = Episode(
        episode.support, perm[episode.support_labels], episode.query, perm[episode.query_labels], 5, 2, 3
    )
    permuted = copy.deepcopy(method)
    with torch.no_grad():
        permuted.model.label_gates.weight[:, perm] = method.model.label_gates.weight
        permuted.model.output.weight[perm] = method.model.output.weight
        permuted.model.output.bias[perm] = method.model.output.bias
    assert torch.equal(permuted.predict(relabelled), perm[method.predict(episode)])
    order = torch.arange(10).expand(4, -1)
    plain = method._logits(relabelled, order)[2]
    assert not torch.allclose(plain[..., perm], method._logits(episode, order)[2])  # not equivariant


def test_predict_is_deterministic_and_leaves_the_method_untouched() -> None:
    method = make()
    episode = random_episode(SMALL)
    generator = torch.Generator().manual_seed(0)
    method.meta_train_step(method.context.train, generator)  # non-trivial optimizer state
    before = copy.deepcopy(method.state_dict())
    for training in (True, False):
        method.model.train(training)
        first = method.predict(episode)
        assert torch.equal(method.predict(episode), first)
        assert method.model.training is training
    assert_same_state(method.state_dict(), before)


def test_configs_follow_the_reimplementations_and_check_their_values() -> None:
    paper = MANN.make_config("paper", {}, EpisodeSpec(5, 1, 15))
    assert (paper.controller, paper.memory_slots, paper.memory_width, paper.read_heads) == (200, 128, 40, 4)
    assert (paper.gamma, paper.meta_batch, paper.lr, paper.train_shots, paper.train_queries) == (
        0.95,
        16,
        1e-3,
        1,
        9,
    )
    assert MANN.make_config("paper", {}, EpisodeSpec(5, 5, 15)).train_queries == 5
    assert MANN.preset_for("paper", SMALL).meta_steps == 100_000
    for shape in ((5, 1), (5, 5), (20, 1), (20, 5), (10, 2)):
        quick = MANN.preset_for("quick", EpisodeSpec(*shape, 15))
        assert quick.eval_episodes == 1000 and 100 <= quick.meta_steps <= 10_000
        assert quick.validate_every == quick.meta_steps // 5
    assert MANN.family == "C" and MANN.cite_key == "santoro2016meta"
    for bad in ({"gamma": "1.5"}, {"read_heads": "0"}):
        with pytest.raises(ValueError):
            MANN.make_config("smoke", bad, SMALL)
    with pytest.raises(ValueError, match="read_heads 4 exceeds memory_slots 2"):
        make(overrides={"memory_slots": "2"})
    with pytest.raises(ValueError, match="train_queries"):
        make(overrides={"train_queries": "20"})
