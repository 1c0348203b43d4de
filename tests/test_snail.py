"""SNAIL: its blocks against plain references, causality, non-transduction, relabelling, purity, learning."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state

from metabench.config import EpisodeSpec
from metabench.data import evaluation_episodes, load_protocol
from metabench.data.episode import Episode
from metabench.methods.base import TrainingContext
from metabench.methods.other.cards import SNAIL
from metabench.methods.other.snail import AttentionBlock, DenseBlock, Snail, SnailNet, TCBlock

SMALL = EpisodeSpec(ways=5, shots=1, queries=4)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


@pytest.fixture(scope="module")
def vinyals() -> Any:
    return load_protocol("vinyals")


def build(data: Any, episode: EpisodeSpec = SMALL, overrides: dict[str, str] | None = None, seed: int = 0):
    config = SNAIL.make_config("smoke", overrides or {}, episode)
    torch.manual_seed(seed)
    return Snail(config, TrainingContext(episode, torch.device("cpu"), data.train, data.val))


def task_logits(method: Snail, episode: Episode) -> torch.Tensor:
    """The logits `predict` takes its argmax of."""
    method.model.eval()
    try:
        with torch.no_grad():
            return method._logits(episode, method.predict_order.expand(episode.batch_size, -1))
    finally:
        method.model.train()


def episodes_of(data: Any, episodes: int = 4, spec: EpisodeSpec = SMALL) -> Episode:
    return next(iter(evaluation_episodes(data.test, spec, episodes, batch_size=episodes)))


# --- blocks ----------------------------------------------------------------------------------------


def test_dense_block_is_a_gated_dilated_causal_convolution() -> None:
    torch.manual_seed(0)
    block = DenseBlock(channels=7, dilation=2, filters=5)
    x = torch.randn(3, 6, 7)
    out = block(x)
    assert out.shape == (3, 6, 12)
    assert torch.equal(out[..., :7], x)
    # Reference: torch's conv1d, kernel 2, dilation 2, padded on the left only (tap 0 reads x[t - 2]).
    weight = block.conv.weight.view(10, 2, 7).permute(0, 2, 1)  # [filters+gates, channels, taps]
    conv = F.conv1d(F.pad(x.transpose(1, 2), (2, 0)), weight, block.conv.bias, dilation=2).transpose(1, 2)
    f, g = conv.chunk(2, dim=-1)
    torch.testing.assert_close(out[..., 7:], torch.tanh(f) * torch.sigmoid(g))


@pytest.mark.parametrize(
    ("length", "dilations"), [(6, [2, 4, 8]), (26, [2, 4, 8, 16, 32]), (101, [2**i for i in range(1, 8)])]
)
def test_tc_block_dilations_follow_the_paper(length: int, dilations: list[int]) -> None:
    block = TCBlock(channels=9, length=length, filters=4)
    assert [b.dilation for b in block.blocks] == dilations  # 2^i, i = 1 .. ceil(log2 T)
    assert len(dilations) == math.ceil(math.log2(length))
    assert (
        block(torch.randn(2, length, 9)).shape
        == (2, length, 9 + 4 * len(dilations))
        == (2, length, block.out_channels)
    )


def test_attention_block_matches_a_loop_over_positions() -> None:
    torch.manual_seed(0)
    block = AttentionBlock(channels=6, key_size=4, value_size=3)
    x = torch.randn(2, 5, 6)
    out = block(x)
    assert out.shape == (2, 5, 9)
    q, k, v = block.query(x), block.key(x), block.value(x)
    for t in range(5):  # position t reads positions 0..t only: a softmax over the keys up to t
        weights = torch.softmax(q[:, t : t + 1] @ k[:, : t + 1].transpose(1, 2) / math.sqrt(4), dim=-1)
        torch.testing.assert_close(out[:, t, 6:], (weights @ v[:, : t + 1])[:, 0])


def test_last_step_equals_the_whole_sequence() -> None:
    """`last` runs a shared prefix once and Q final steps; each must equal the full sequence's output."""
    torch.manual_seed(0)
    for prefix_length in (1, 5, 20):
        net = SnailNet(channels=9, length=prefix_length + 1, ways=4)
        prefix, last = torch.randn(2, prefix_length, 9), torch.randn(2, 3, 9)
        logits = net.last(prefix, last)
        assert logits.shape == (2, 3, 4)
        for q in range(3):
            whole = net(torch.cat([prefix, last[:, q : q + 1]], dim=1))
            torch.testing.assert_close(logits[:, q], whole[:, -1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("length", [6, 26])
def test_snail_net_is_causal(length: int) -> None:
    torch.manual_seed(0)
    net = SnailNet(channels=69, length=length, ways=5)
    x = torch.randn(2, length, 69)
    out = net(x)
    for t in range(length - 1):
        later = x.clone()
        later[:, t + 1 :] = torch.randn(2, length - t - 1, 69)
        assert torch.equal(net(later)[:, : t + 1], out[:, : t + 1]), f"position {t} saw a later input"
    for s in range(length - 1):  # and the test can fail: every position is read by every later one
        earlier = x.clone()
        earlier[:, s] = torch.randn(2, 69)
        changed = (net(earlier) - out).abs().amax(dim=(0, 2)) > 1e-6
        assert changed[s:].all() and not changed[:s].any()


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="lr must be positive"):
        SNAIL.make_config("paper", {"lr": "0"}, SMALL)
    with pytest.raises(ValueError, match="train_queries must be positive"):
        SNAIL.make_config("paper", {"train_queries": "0"}, SMALL)


# --- the method ------------------------------------------------------------------------------------


def test_predictions_do_not_depend_on_other_queries(vinyals: Any) -> None:
    method, episode = build(vinyals), episodes_of(vinyals)
    half = episode.query.shape[1] // 2
    parts = [
        Episode(
            episode.support, episode.support_labels, episode.query[:, s], episode.query_labels[:, s], 5, 1, 2
        )
        for s in (slice(None, half), slice(half, None))
    ]
    assert torch.equal(torch.cat([method.predict(p) for p in parts], dim=1), method.predict(episode))
    split = torch.cat([task_logits(method, p) for p in parts], dim=1)
    torch.testing.assert_close(split, task_logits(method, episode), rtol=1e-5, atol=1e-6)


def permute_label_weights(net: SnailNet, perm: torch.Tensor, features: int = 64) -> None:
    """Make `net` read label perm[y] where it read label y, and output logit perm[y] where it gave y.

    The one-hot label sits at channels features..features+N of every layer's input (the blocks only
    append channels); a DenseBlock's linear layer reads two taps side by side, so twice."""
    labels = torch.arange(features, features + len(perm))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, DenseBlock):
                layers, offsets = [module.conv], [0, module.conv.in_features // 2]
            elif isinstance(module, AttentionBlock):
                layers, offsets = [module.query, module.key, module.value], [0]
            else:
                continue
            for layer in layers:
                for offset in offsets:
                    layer.weight[:, offset + features + perm] = layer.weight[:, offset + labels].clone()
        net.out.weight[perm] = net.out.weight.clone()
        net.out.bias[perm] = net.out.bias.clone()


def test_relabelling_permutes_the_predictions(vinyals: Any) -> None:
    """SNAIL gives every label channel its own weights, so it is label-equivariant only up to the
    matching permutation of those weights; with it, relabelling the episode must permute the logits.
    This holds only because the support order depends on slots, never on labels or images."""
    method, episode = build(vinyals), episodes_of(vinyals, 8)
    perm = torch.tensor([3, 0, 4, 1, 2])  # label y becomes perm[y]
    relabelled = Episode(
        episode.support, perm[episode.support_labels], episode.query, perm[episode.query_labels], 5, 1, 4
    )
    logits = task_logits(method, episode)
    permute_label_weights(method.model["snail"], perm)
    relabelled_logits = task_logits(method, relabelled)
    torch.testing.assert_close(relabelled_logits[..., perm], logits, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(relabelled_logits, logits, atol=1e-3)  # the permutation was not a no-op


def test_predict_leaves_the_method_untouched_and_is_deterministic(vinyals: Any) -> None:
    trained, episode, generator = build(vinyals), episodes_of(vinyals), torch.Generator().manual_seed(0)
    trained.meta_train_step(vinyals.train, generator)  # optimizer state and BatchNorm statistics exist
    before = copy.deepcopy(trained.state_dict())
    for mode in (True, False):
        trained.model.train(mode)
        first = trained.predict(episode)
        assert all(m.training == mode for m in trained.model.modules())
        assert torch.equal(trained.predict(episode), first)
    trained.model.train()
    assert_same_state(trained.state_dict(), before)
    with pytest.raises(ValueError, match="5-way 1-shot"):
        trained.predict(episodes_of(vinyals, 2, EpisodeSpec(5, 2, 1)))


def test_reduced_presets_embed_about_as_many_images_for_every_shape() -> None:
    batches = {
        (n, k): SNAIL.preset_for("quick", EpisodeSpec(n, k, 15)).config["meta_batch"]
        for n, k in ((5, 1), (5, 5), (20, 1), (20, 5))
    }
    assert batches == {(5, 1): 16, (5, 5): 5, (20, 1): 4, (20, 5): 1}
    assert SNAIL.make_config("quick", {}, EpisodeSpec(20, 1, 15)).meta_batch == 4
    assert SNAIL.preset_for("paper", EpisodeSpec(20, 5, 15)).config == {}
