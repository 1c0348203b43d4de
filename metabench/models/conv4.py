"""Conv-4, the few-shot backbone of Vinyals, Snell and Finn: four 3x3 conv-BN-ReLU blocks, 64 channels."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Downsample = Literal["maxpool", "stride"]
Readout = Literal["mean", "flatten"]


def feature_size(image_size: int = 28, layers: int = 4, downsample: Downsample = "maxpool") -> int:
    """Side length of the last feature map: floor-halving for max-pool, ceil-halving for 'same' stride 2."""
    side = image_size
    for _ in range(layers):
        side = side // 2 if downsample == "maxpool" else (side + 1) // 2
    return side


class BatchStatsNorm2d(nn.Module):
    """BatchNorm that always normalizes with the statistics of the current batch, written out by hand.

    MAML needs batch statistics at train and test time and second derivatives through them under
    torch.func.vmap. torch's fused batch_norm gets that case wrong (its batched double-backward rule
    is off; pytorch/functorch#534), so the mean and variance are computed with plain tensor ops,
    which vmap and autograd handle exactly. Parameter names match nn.BatchNorm2d's.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        scale = self.weight[:, None, None] * torch.rsqrt(var + self.eps)
        return (x - mean) * scale + self.bias[:, None, None]


class ConvBlock(nn.Module):
    """3x3 conv, BatchNorm, ReLU, then halve the resolution with a 2x2 max-pool or by the conv's stride 2."""

    def __init__(self, in_channels: int, out_channels: int, downsample: Downsample, running_stats: bool):
        super().__init__()
        stride = 2 if downsample == "stride" else 1
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
        # Without running statistics BatchNorm always normalizes with the current batch (MAML's code),
        # which also keeps the module free of buffers that torch.func.vmap would have to mutate.
        self.norm = nn.BatchNorm2d(out_channels) if running_stats else BatchStatsNorm2d(out_channels)
        self.pool = downsample == "maxpool"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(self.conv(x)))
        return F.max_pool2d(x, 2) if self.pool else x


class Conv4(nn.Module):
    """The feature extractor: images [n, C, 28, 28] -> features [n, hidden].

    downsample="maxpool" is the Vinyals/Snell network (28 -> 14 -> 7 -> 3 -> 1, 64 features);
    downsample="stride" is MAML's Omniglot network (Finn et al.'s code, learn2learn's OmniglotCNN):
    stride-2 convolutions (28 -> 14 -> 7 -> 4 -> 2) and a mean over the last 2x2 map, about 4x cheaper.
    readout="flatten" keeps the whole last map instead of its mean (Reptile's network: 2x2x64 = 256
    features on 28x28 images).
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden: int = 64,
        layers: int = 4,
        downsample: Downsample = "maxpool",
        running_stats: bool = True,
        readout: Readout = "mean",
        image_size: int = 28,
    ):
        super().__init__()
        if downsample not in ("maxpool", "stride"):
            raise ValueError(f"downsample must be 'maxpool' or 'stride', got {downsample!r}")
        if readout not in ("mean", "flatten"):
            raise ValueError(f"readout must be 'mean' or 'flatten', got {readout!r}")
        channels = [in_channels] + [hidden] * layers
        self.blocks = nn.Sequential(
            *(ConvBlock(channels[i], channels[i + 1], downsample, running_stats) for i in range(layers))
        )
        side = feature_size(image_size, layers, downsample) if readout == "flatten" else 1
        self.out_features = hidden * side * side
        self.downsample = downsample
        self.readout = readout
        self.channels_last = False

    def use_channels_last(self) -> Conv4:
        """Store weights and activations channels-last: about 1.3x faster convolutions on the CPU (oneDNN).

        Not for networks run under torch.func.vmap, whose batched weights would lose the layout.
        """
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.blocks(x)
        if self.readout == "flatten":
            return x.flatten(start_dim=1)
        # Max-pool leaves a 1x1 map on 28x28 input; the stride network averages its 2x2 map, as Finn's code.
        return x.mean(dim=(2, 3))


class Conv4Classifier(nn.Module):
    """Conv-4 features followed by a linear layer: the N-way network that MAML adapts as a whole."""

    def __init__(self, ways: int, backbone: Conv4):
        super().__init__()
        self.features = backbone
        self.head = nn.Linear(backbone.out_features, ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def init_weights(module: nn.Module) -> None:
    """Finn et al.'s initialization: Xavier-uniform weights, zero biases (BatchNorm: scale 1, shift 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
