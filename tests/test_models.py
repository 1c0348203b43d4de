"""Backbones: output shapes, the stride-2 MAML network, and the hand-written batch-statistics BatchNorm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metabench.models.conv4 import BatchStatsNorm2d, Conv4, Conv4Classifier, feature_size, init_weights


@pytest.mark.parametrize(
    ("downsample", "sides"),
    [("maxpool", [14, 7, 3, 1]), ("stride", [14, 7, 4, 2])],
)
def test_conv4_feature_maps_and_output(downsample: str, sides: list[int]) -> None:
    torch.manual_seed(0)
    net = Conv4(downsample=downsample)
    x = torch.rand(6, 1, 28, 28)
    for block, side in zip(net.blocks, sides, strict=True):
        x = block(x)
        assert x.shape == (6, 64, side, side)
    assert net(torch.rand(6, 1, 28, 28)).shape == (6, 64)
    assert feature_size(28, 4, downsample) == sides[-1]


def test_conv4_has_the_papers_parameter_count() -> None:
    # 4 convs (3x3, 64 out) with BatchNorm scale and shift: 640 + 3 * 36,928 + 4 * 128 = 111,936.
    assert sum(p.numel() for p in Conv4().parameters()) == 111_936
    head = Conv4Classifier(20, Conv4(downsample="stride", running_stats=False))
    assert sum(p.numel() for p in head.parameters()) == 111_936 + 64 * 20 + 20
    assert head(torch.rand(3, 1, 28, 28)).shape == (3, 20)


def test_hidden_width_and_invalid_downsample() -> None:
    assert Conv4(hidden=32)(torch.rand(2, 1, 28, 28)).shape == (2, 32)
    with pytest.raises(ValueError, match="downsample must be"):
        Conv4(downsample="avgpool")  # type: ignore[arg-type]


def test_batch_stats_norm_matches_torch_batch_norm() -> None:
    torch.manual_seed(0)
    norm = BatchStatsNorm2d(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(5, 8, 7, 7) * 3 + 1
    expected = F.batch_norm(x, None, None, norm.weight, norm.bias, training=True)
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
    assert not list(norm.buffers()), "batch statistics only: no running buffers to mutate"


def test_maml_network_uses_batch_statistics_in_eval_mode_too() -> None:
    net = Conv4(downsample="stride", running_stats=False).eval()
    x = torch.rand(4, 1, 28, 28)
    # Batch statistics: the same image is normalized differently in a different batch.
    alone = net(x[:2])
    together = net(x)[:2]
    assert not torch.allclose(alone, together)


def test_init_weights_is_xavier_with_zero_biases() -> None:
    torch.manual_seed(0)
    net = Conv4Classifier(5, Conv4(downsample="stride", running_stats=False))
    init_weights(net)
    conv = net.features.blocks[0].conv
    assert torch.count_nonzero(conv.bias) == 0 and torch.count_nonzero(net.head.bias) == 0
    bound = (6 / (9 * 1 + 9 * 64)) ** 0.5  # xavier-uniform for a 3x3 conv from 1 to 64 channels
    # Within the bound, and reaching it: 576 uniform draws come within 10% of it (a zero or tiny init
    # would not); PyTorch's default (kaiming, bound 1/3 here) exceeds it.
    assert 0.9 * bound < conv.weight.abs().max() <= bound
