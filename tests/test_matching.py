"""Matching Networks: the attention classifier, full context embeddings, invariances and mechanics."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state, random_context, relabelled

from metabench.config import EpisodeSpec
from metabench.data import evaluation_episodes, load_protocol
from metabench.data.episode import Episode
from metabench.methods.base import TrainingContext
from metabench.methods.compare.cards import MATCHING
from metabench.methods.compare.matching import (
    FullContextEmbeddings,
    MatchingNet,
    class_probabilities,
    cosine_similarities,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

# Real 5-way tasks, ten queries per class so that each half of the split below has five of every class.
SPEC = EpisodeSpec(ways=5, shots=1, queries=10)
FIVE_SHOT = EpisodeSpec(ways=5, shots=5, queries=2)
PERMUTATION = torch.tensor([3, 0, 4, 1, 2])  # no class keeps its label
TINY = {"train_queries": "2", "meta_batch": "2", "hidden": "16"}
# The smoke preset takes the re-implementation's one-sided cosine; the paper's is named where it is meant.
PAPER_COSINE = {"cosine": "both"}
CONFIGS = [PAPER_COSINE, PAPER_COSINE | {"fce": "true"}, {"cosine": "support"}]
CONFIG_IDS = ["paper-cosine", "paper-cosine-fce", "support-cosine"]


@pytest.fixture(scope="module")
def vinyals() -> Any:
    return load_protocol("vinyals")


def build(data: Any, overrides: dict[str, str], episode: EpisodeSpec = SPEC, seed: int = 0) -> MatchingNet:
    torch.manual_seed(seed)  # as the runner does before constructing a method
    config = MATCHING.make_config("smoke", overrides, episode)
    return MatchingNet(config, TrainingContext(episode, torch.device("cpu"), data.train, data.val))


def build_random(overrides: dict[str, str], seed: int = 0) -> tuple[MatchingNet, TrainingContext]:
    """A method on random images (conftest.random_context), for mechanics that need no real data."""
    context = random_context(SPEC)
    torch.manual_seed(seed)
    return MatchingNet(MATCHING.make_config("smoke", overrides, SPEC), context), context


def tasks(data: Any, spec: EpisodeSpec, count: int) -> Episode:
    return next(iter(evaluation_episodes(data.test, spec, count, batch_size=count)))


def halves_ordered(episode: Episode) -> Episode:
    """The queries reordered so that each half holds half of every class's queries (as the shared test)."""
    b, n, q = episode.batch_size, episode.ways, episode.queries
    by_class = episode.query_labels.argsort(dim=1, stable=True).view(b, n, q)
    order = by_class.transpose(1, 2).flatten(1)
    rows = torch.arange(b)[:, None]
    return Episode(
        episode.support,
        episode.support_labels,
        episode.query[rows, order],
        episode.query_labels.gather(1, order),
        n,
        episode.shots,
        q,
    )


def with_support_image(episode: Episode, slot: int, image: torch.Tensor) -> Episode:
    support = episode.support.clone()
    support[:, slot] = image
    return Episode(
        support,
        episode.support_labels,
        episode.query,
        episode.query_labels,
        episode.ways,
        episode.shots,
        episode.queries,
    )


# --- the classifier: attention and probabilities --------------------------------------------------


@pytest.mark.parametrize("overrides", CONFIGS, ids=CONFIG_IDS)
def test_attention_is_a_distribution_over_the_support_set(vinyals: Any, overrides: dict) -> None:
    method = build(vinyals, overrides)
    one_shot = tasks(vinyals, SPEC, 3)
    attention = method.attention(one_shot)
    assert attention.shape == (3, 50, 5)
    assert (attention >= 0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 50))
    # One example per class: a class's probability is the attention on its one example.
    probabilities = class_probabilities(attention, one_shot.support_labels, 5)
    labels = one_shot.support_labels[:, None, :].expand(-1, 50, -1)
    torch.testing.assert_close(probabilities.gather(-1, labels), attention)
    assert torch.equal(method.predict(one_shot), probabilities.argmax(-1))

    # Five examples per class: a class's probability is the attention summed over its examples.
    five_shot = tasks(vinyals, FIVE_SHOT, 3)
    attention = method.attention(five_shot)
    probabilities = class_probabilities(attention, five_shot.support_labels, 5)
    by_class = attention.view(3, 10, 5, 5).sum(-1)  # the support is class-major: slot n*K + k is class n
    torch.testing.assert_close(probabilities, by_class)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(3, 10))


def test_cosine_normalizes_both_or_only_the_support() -> None:
    generator = torch.Generator().manual_seed(0)
    query, support = torch.randn(2, 3, 8, generator=generator), torch.randn(2, 4, 8, generator=generator)
    both = cosine_similarities(query, support, "both")
    reference = F.cosine_similarity(query[:, :, None], support[:, None], dim=-1)
    torch.testing.assert_close(both, reference)
    one_sided = cosine_similarities(query, support, "support")
    torch.testing.assert_close(one_sided, reference * query.norm(dim=-1, keepdim=True))
    # Scaling a query scales its similarities only in the re-implementation's one-sided cosine.
    torch.testing.assert_close(cosine_similarities(3 * query, support, "both"), both)
    torch.testing.assert_close(cosine_similarities(3 * query, support, "support"), 3 * one_sided)


def by_hand_loss(features: Any, episode: Episode, ways: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-log P(y | x̂, S) and the attention, one query at a time, from per-image embeddings."""
    losses, attentions = [], []
    for t in range(episode.batch_size):
        support = [features(image) for image in episode.support[t]]
        for query_image, label in zip(episode.query[t], episode.query_labels[t], strict=True):
            query = features(query_image)
            similarities = torch.stack([F.cosine_similarity(query, g, dim=0) for g in support])
            attention = similarities.exp() / similarities.exp().sum()
            probability = sum(
                a for a, y in zip(attention, episode.support_labels[t], strict=True) if y == label
            )
            losses.append(-torch.log(probability))
            attentions.append(attention)
    return torch.stack(losses).mean(), torch.stack(attentions).view(
        episode.batch_size, -1, ways * episode.shots
    )


@pytest.mark.parametrize("spec", [EpisodeSpec(5, 1, 2), EpisodeSpec(3, 2, 2)], ids=["1-shot", "2-shot"])
def test_loss_and_attention_equal_a_loop_over_queries(vinyals: Any, spec: EpisodeSpec) -> None:
    method = build(vinyals, PAPER_COSINE, spec)
    method.meta_train_step(vinyals.train, torch.Generator().manual_seed(0))  # not the initial BatchNorm
    episode = tasks(vinyals, spec, 2)
    method.model.eval()  # running statistics: an image's embedding does not depend on its batch

    def features(image: torch.Tensor) -> torch.Tensor:
        return method.model(image[None])[0]

    with torch.no_grad():
        expected_loss, expected_attention = by_hand_loss(features, episode, spec.ways)
        loss, _ = method.loss(episode)
    torch.testing.assert_close(loss, expected_loss)
    torch.testing.assert_close(method.attention(episode), expected_attention)


# --- full context embeddings -------------------------------------------------------------------------


def lstm_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """One LSTM step as torch defines it (gates in the order input, forget, cell, output)."""
    i, f, g, o = (weight_ih @ x + bias_ih + weight_hh @ h + bias_hh).chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def by_hand_support(fce: FullContextEmbeddings, g_prime: list[torch.Tensor]) -> list[torch.Tensor]:
    """g(x_i, S) = h→_i + h←_i + g'(x_i), the two LSTMs run one support example at a time."""
    lstm, zero = fce.support_lstm, torch.zeros_like(g_prime[0])
    forward, (h, c) = [], (zero, zero)
    for x in g_prime:
        h, c = lstm_step(x, h, c, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
        forward.append(h)
    backward, (h, c) = [], (zero, zero)
    for x in reversed(g_prime):
        weights = (lstm.weight_ih_l0_reverse, lstm.weight_hh_l0_reverse)
        h, c = lstm_step(x, h, c, *weights, lstm.bias_ih_l0_reverse, lstm.bias_hh_l0_reverse)
        backward.insert(0, h)
    return [fw + bw + x for fw, bw, x in zip(forward, backward, g_prime, strict=True)]  # skip connection


def by_hand_query(fce: FullContextEmbeddings, f_prime: torch.Tensor, g: list[torch.Tensor]) -> torch.Tensor:
    """f(x̂, S) = attLSTM(f'(x̂), g(S), K) for one query, as Appendix A writes it."""
    cell, d = fce.query_cell, len(f_prime)
    # The LSTM's previous hidden state is [h_{k-1}, r_{k-1}]: its recurrent matrix acts on both.
    weight_x, weight_r = cell.weight_ih[:, :d], cell.weight_ih[:, d:]
    recurrent = torch.cat([cell.weight_hh, weight_r], dim=1)
    h, c = f_prime, torch.zeros(d)
    for _ in range(fce.steps):
        a = torch.softmax(torch.stack([h @ gi for gi in g]), dim=0)
        r = sum(ai * gi for ai, gi in zip(a, g, strict=True))
        h_hat, c = lstm_step(f_prime, torch.cat([h, r]), c, weight_x, recurrent, cell.bias_ih, cell.bias_hh)
        h = h_hat + f_prime
    return h


def test_full_context_embeddings_follow_the_papers_equations() -> None:
    """On features large enough that the attention LSTM's softmax is far from uniform (the real
    embeddings of an untrained network are small, and its attention nearly uniform)."""
    torch.manual_seed(0)
    fce = FullContextEmbeddings(features=8, steps=3)
    generator = torch.Generator().manual_seed(1)
    g_prime, f_prime = (
        2 * torch.randn(2, 5, 8, generator=generator),
        2 * torch.randn(2, 4, 8, generator=generator),
    )
    with torch.no_grad():
        support = fce.support(g_prime)
        query = fce.query(f_prime, support)
        for t in range(2):
            g = by_hand_support(fce, list(g_prime[t]))
            torch.testing.assert_close(support[t], torch.stack(g))
            for j in range(4):
                torch.testing.assert_close(query[t, j], by_hand_query(fce, f_prime[t, j], g))
                attention = torch.softmax(torch.stack([query[t, j] @ gi for gi in g]), dim=0)
                assert attention.max() > 0.5  # far from uniform


def by_hand_fce_attention(method: MatchingNet, episode: Episode) -> torch.Tensor:
    """The attention of every query over its support set, one task and one query at a time."""
    attentions = []
    for t in range(episode.batch_size):
        g = by_hand_support(method.context_embeddings, [method.model(x[None])[0] for x in episode.support[t]])
        for image in episode.query[t]:
            f = by_hand_query(method.context_embeddings, method.model(image[None])[0], g)
            similarities = torch.stack([F.cosine_similarity(f, gi, dim=0) for gi in g])
            attentions.append(torch.softmax(similarities, dim=0))
    return torch.stack(attentions).view(episode.batch_size, -1, episode.support.shape[1])


def test_batched_fce_attention_equals_a_loop_over_tasks_and_queries(vinyals: Any) -> None:
    spec = EpisodeSpec(3, 2, 2)
    method = build(vinyals, PAPER_COSINE | {"fce": "true", "fce_steps": "3"}, spec)
    method.meta_train_step(vinyals.train, torch.Generator().manual_seed(0))
    episode = tasks(vinyals, spec, 2)
    method.model.eval()
    with torch.no_grad():
        expected = by_hand_fce_attention(method, episode)
    torch.testing.assert_close(method.attention(episode), expected)


@pytest.mark.parametrize("fce", [False, True])
def test_full_context_embeddings_make_each_embedding_depend_on_the_support_set(
    vinyals: Any, fce: bool
) -> None:
    method = build(vinyals, {"fce": str(fce).lower()})
    episode = tasks(vinyals, SPEC, 2)
    changed = with_support_image(episode, 4, episode.query[:, 0])  # a different drawing in the last slot
    support, query = method.embeddings(episode)
    new_support, new_query = method.embeddings(changed)
    assert not torch.equal(support[:, 4], new_support[:, 4])
    # The other support examples and every query: changed by the new support image only with FCE.
    assert torch.equal(support[:, :4], new_support[:, :4]) is not fce
    assert torch.equal(query, new_query) is not fce
    if fce:
        assert (support[:, :4] - new_support[:, :4]).abs().amax(-1).gt(1e-4).all()
        assert (query - new_query).abs().amax(-1).gt(1e-5).all()


def test_every_fce_parameter_gets_a_gradient(vinyals: Any) -> None:
    method = build(vinyals, {"fce": "true"})
    method.loss(vinyals.train.sample(2, SPEC, torch.Generator().manual_seed(0)))[0].backward()
    for name, parameter in method.context_embeddings.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


# --- invariances (tests/test_method_invariants.py checks only the default config) ---------------------


@pytest.mark.parametrize("overrides", CONFIGS, ids=CONFIG_IDS)
def test_predictions_do_not_depend_on_other_queries(vinyals: Any, overrides: dict) -> None:
    method = build(vinyals, overrides)
    assert not method.transductive
    method.meta_train_step(vinyals.train, torch.Generator().manual_seed(0))  # non-initial running statistics
    episode = halves_ordered(tasks(vinyals, SPEC, 4))
    whole = method.predict(episode)
    halves = []
    for part in (slice(0, 25), slice(25, None)):
        half = Episode(
            episode.support,
            episode.support_labels,
            episode.query[:, part],
            episode.query_labels[:, part],
            5,
            1,
            5,
        )
        halves.append(method.predict(half))
    assert torch.equal(whole, torch.cat(halves, dim=1))


@pytest.mark.parametrize("overrides", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("spec", [SPEC, FIVE_SHOT], ids=["1-shot", "5-shot"])
def test_relabelling_permutes_the_predictions(vinyals: Any, overrides: dict, spec: EpisodeSpec) -> None:
    method = build(vinyals, overrides, spec)
    episode = tasks(vinyals, spec, 4)
    assert torch.equal(method.predict(relabelled(episode, PERMUTATION)), PERMUTATION[method.predict(episode)])


# --- mechanics: determinism, resume, prediction is read-only ------------------------------------------


def train(method: MatchingNet, data: Any, steps: int, generator: torch.Generator) -> list[float]:
    return [method.meta_train_step(data.train, generator).loss for _ in range(steps)]


@pytest.mark.parametrize("fce", ["false", "true"])
def test_same_seed_same_run(fce: str) -> None:
    results = []
    for _ in range(2):
        method, data = build_random(TINY | {"fce": fce})
        results.append((method.state_dict(), train(method, data, 3, torch.Generator().manual_seed(7))))
    assert_same_state(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]
    assert len(set(results[0][1])) == 3  # the loss moves: a step that trained nothing would pass otherwise


@pytest.mark.parametrize("fce", ["false", "true"])
def test_resume_from_state_dict_is_bit_identical(fce: str) -> None:
    generator = torch.Generator().manual_seed(3)
    method, data = build_random(TINY | {"fce": fce})
    train(method, data, 3, generator)
    buffer = io.BytesIO()
    torch.save({"method": method.state_dict(), "generator": generator.get_state()}, buffer)
    continued = train(method, data, 2, generator)

    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    # Other initial weights: everything must come from the checkpoint.
    resumed, _ = build_random(TINY | {"fce": fce}, seed=99)
    resumed.load_state_dict(checkpoint["method"])
    resumed_generator = torch.Generator()
    resumed_generator.set_state(checkpoint["generator"])
    assert train(resumed, data, 2, resumed_generator) == continued
    assert_same_state(resumed.state_dict(), method.state_dict())


@pytest.mark.parametrize("fce", ["false", "true"])
@pytest.mark.parametrize("training", [True, False])
def test_predict_leaves_the_method_untouched(fce: str, training: bool) -> None:
    method, data = build_random(TINY | {"fce": fce})
    train(method, data, 1, torch.Generator().manual_seed(0))
    for module in method._modules():
        module.train(training)
    before = {key: value.clone() for key, value in method.model.state_dict().items()}
    if method.context_embeddings is not None:
        before |= {f"fce.{k}": v.clone() for k, v in method.context_embeddings.state_dict().items()}
    episode = data.train.sample(3, SPEC, torch.Generator().manual_seed(1))
    first = method.predict(episode)
    assert first.dtype == torch.long and first.shape == (3, 50)
    after = dict(method.model.state_dict())
    if method.context_embeddings is not None:
        after |= {f"fce.{k}": v for k, v in method.context_embeddings.state_dict().items()}
    assert_same_state(before, after)  # BatchNorm's running statistics included
    assert all(m.training is training for module in method._modules() for m in module.modules())
    assert torch.equal(first, method.predict(episode))


# --- the card -----------------------------------------------------------------------------------------


SHAPES = ((5, 1), (20, 1), (5, 5), (20, 5))


def test_card_trains_on_the_tests_shape_and_loads_no_torch() -> None:
    for ways, shots in SHAPES:
        episode = EpisodeSpec(ways, shots, 15)
        for preset in ("smoke", "quick", "paper"):
            config = MATCHING.make_config(preset, {}, episode)
            assert (config.train_ways, config.train_shots) == (ways, shots)
            assert MATCHING.preset_for(preset, episode).meta_steps > 0
        assert MATCHING.preset_for("quick", episode).eval_episodes == 1000
    # The reduced presets take as many tasks a step as embed 32 (quick) or 4 (smoke) 5w1s tasks' images.
    quick = {(n, k): MATCHING.make_config("quick", {}, EpisodeSpec(n, k, 15)).meta_batch for n, k in SHAPES}
    assert quick == {(5, 1): 32, (20, 1): 8, (5, 5): 10, (20, 5): 2}
    assert MATCHING.make_config("smoke", {}, EpisodeSpec(20, 1, 15)).meta_batch == 1
    paper = MATCHING.make_config("paper", {}, EpisodeSpec(5, 1, 15))
    assert (paper.fce, paper.cosine, paper.lr, paper.meta_batch) == (False, "both", 1e-3, 32)
    code = "import json, sys, metabench.methods.compare.cards; print(json.dumps('torch' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


def test_an_impossible_training_shape_is_refused_in_one_line() -> None:
    context = random_context(SPEC, characters=2)  # 8 classes
    with pytest.raises(ValueError, match="train_ways = 20 exceeds the 8 training classes"):
        MatchingNet(MATCHING.make_config("smoke", {"train_ways": "20"}, SPEC), context)
