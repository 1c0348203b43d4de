"""Siamese Networks (Koch et al., 2015): learn same/different on pairs, classify by the most similar image."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats, TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.compare.cards import SIAMESE
from metabench.models.conv4 import Conv4

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler

KOCH_SIDE = 105  # the paper's input: Omniglot's drawings at full size
# Scores of one pass are [tasks, queries, supports, features]; above this many elements the tasks
# are scored in chunks, so a 20-way evaluation batch stays within a few hundred MB.
SCORE_CHUNK_ELEMENTS = 2**25


class KochConvNet(nn.Module):
    """The paper's convolutional twin (their Fig. 4): 105x105 -> 64@10x10, pool, 128@7x7, pool,
    128@4x4, pool, 256@4x4 -> 9216 features; ReLU throughout, no normalization."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(1, 64, 10), nn.Conv2d(64, 128, 7), nn.Conv2d(128, 128, 4), nn.Conv2d(128, 256, 4)]
        )
        self.out_features = 256 * 6 * 6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The cache holds 28x28 drawings; the paper's network needs 105x105, so they are upsampled.
        x = F.interpolate(x, size=(KOCH_SIDE, KOCH_SIDE), mode="bilinear", align_corners=False)
        for index, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if index < len(self.convs) - 1:
                x = F.max_pool2d(x, 2)
        return x.flatten(start_dim=1)


def koch_init(module: nn.Module) -> None:
    """The paper's initialization (§3.2): conv weights N(0, 0.01), fully connected N(0, 0.2), biases
    N(0.5, 0.01)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.2 if isinstance(m, nn.Linear) else 0.01)
            nn.init.normal_(m.bias, 0.5, 0.01)


def affine_parameters(n: int, generator: torch.Generator) -> torch.Tensor:
    """Koch et al.'s distortions (§3.2) as n affine matrices [n, 2, 3] in [-1, 1] coordinates: rotation
    in [-10, 10] degrees, shears in [-0.3, 0.3], scales in [0.8, 1.2] and shifts in [-2, 2] pixels of
    105; each of the seven is drawn per image and applied with probability 1/2 (else it is neutral).
    Drawn on the CPU from the generator, so a seed distorts alike on any device."""

    def component(low: float, high: float, neutral: float, count: int = 1) -> torch.Tensor:
        value = low + (high - low) * torch.rand(n, count, generator=generator)
        applied = torch.rand(n, count, generator=generator) < 0.5
        return torch.where(applied, value, torch.full((), neutral))

    angle = component(-10.0, 10.0, 0.0)[:, 0] * math.pi / 180
    shear = component(-0.3, 0.3, 0.0, 2)
    scale = component(0.8, 1.2, 1.0, 2)
    shift = component(-2.0, 2.0, 0.0, 2) / (KOCH_SIDE / 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    shearing = torch.eye(2).repeat(n, 1, 1)
    shearing[:, 0, 1], shearing[:, 1, 0] = shear[:, 0], shear[:, 1]
    return torch.cat([rotation @ shearing @ torch.diag_embed(scale), shift[:, :, None]], dim=2)


def distort(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Images [n, 1, H, W] resampled (bilinear) through the affine matrices theta [n, 2, 3]."""
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


def class_scores(pair_logits: torch.Tensor, support_labels: torch.Tensor, ways: int) -> torch.Tensor:
    """Each query's score for each class: its highest similarity to that class's support images.

    pair_logits [B, Q, S] and support_labels [B, S] -> [B, Q, ways]. With one shot this is the
    paper's rule, the class of the most similar support image.
    """
    mask = F.one_hot(support_labels, ways).bool()[:, None]  # [B, 1, S, ways]
    masked = pair_logits[..., None].masked_fill(~mask, float("-inf"))
    return masked.amax(dim=2)


class Siamese(Method):
    """Siamese Networks for one-shot recognition: twin networks with tied weights map two images to
    sigmoid features h1, h2; p(same) = sigmoid(sum_j alpha_j |h1_j - h2_j| + b), trained with binary
    cross-entropy on balanced same/different pairs of training images (verification). A test query
    takes the class of the support image it is most similar to; nothing is adapted at test time.

    Koch, Zemel & Salakhutdinov, "Siamese Neural Networks for One-shot Image Recognition", ICML Deep
    Learning Workshop 2015. Deviations: Conv-4 at 28x28 by default (network=koch is theirs); Adam by
    default (their per-layer SGD rates and momenta were never published); the pair set is drawn afresh
    at every step from all training classes instead of a fixed 30k-150k pair set from 12 drawers.
    BatchNorm (Conv-4) keeps running statistics and runs in eval mode at test: not transductive.
    """

    card: ClassVar[MethodCard] = SIAMESE

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        backbone: nn.Module
        if config.network == "koch":
            backbone = KochConvNet()
        else:
            backbone = Conv4(hidden=config.hidden, downsample="maxpool")
            if context.device.type == "cpu":
                backbone.use_channels_last()
        self.model = nn.ModuleDict(
            {
                "backbone": backbone,
                "features": nn.Linear(backbone.out_features, config.features),
                "distance": nn.Linear(config.features, 1),  # the learned weights alpha_j of the L1 distance
            }
        ).to(context.device)
        if config.network == "koch":
            koch_init(self.model)
        parameters = self.model.parameters()
        if config.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                parameters, lr=config.lr, weight_decay=config.weight_decay
            )
        else:
            self.optimizer = torch.optim.SGD(
                parameters, lr=config.lr, momentum=0.5, weight_decay=config.weight_decay
            )
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=config.decay_every, gamma=config.lr_decay
        )
        self.steps_done = 0

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The twin's features of images [n, 1, H, W]: [n, features], each in (0, 1)."""
        return torch.sigmoid(self.model["features"](self.model["backbone"](images)))

    def similarity(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """The logit of p(same) for features broadcast against each other: [..., features] -> [...]."""
        return self.model["distance"]((first - second).abs()).squeeze(-1)

    def pair_logits(self, episode: Episode) -> torch.Tensor:
        """Every query's similarity logit to every support image of its task: [B, N*Q, N*K]."""
        b, n_support = episode.support_labels.shape
        images = torch.cat([episode.support.flatten(0, 1), episode.query.flatten(0, 1)])
        features = self.embed(images)
        support = features[: b * n_support].view(b, 1, n_support, -1)
        query = features[b * n_support :].view(b, -1, 1, features.shape[-1])
        per_chunk = max(1, SCORE_CHUNK_ELEMENTS // (query.shape[1] * n_support * features.shape[-1]))
        return torch.cat(
            [
                self.similarity(query[i : i + per_chunk], support[i : i + per_chunk])
                for i in range(0, b, per_chunk)
            ]
        )

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        pairs = sampler.sample_pairs(self.config.batch_size, generator)
        first, second = pairs.first.to(self.device), pairs.second.to(self.device)
        if self.config.distortions:
            theta = affine_parameters(2 * len(first), generator)
            first, second = distort(first, theta[: len(first)]), distort(second, theta[len(first) :])
        if self.config.optimizer == "sgd":
            # Koch et al.: momentum starts at 0.5 and rises linearly to its final value.
            fraction = self.context.fraction_done(self.steps_done)
            for group in self.optimizer.param_groups:
                group["momentum"] = 0.5 + (self.config.momentum - 0.5) * fraction
        self.model.train()
        features = self.embed(torch.cat([first, second]))
        logits = self.similarity(*features.chunk(2))
        same = pairs.same.to(self.device)
        loss = F.binary_cross_entropy_with_logits(logits, same)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.steps_done += 1
        accuracy = ((logits > 0).float() == same).float().mean()
        return StepStats(loss=loss.item(), accuracy=accuracy.item(), metrics={"lr": lr})

    @torch.no_grad()
    def predict(self, episode: Episode) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()  # running BatchNorm statistics: no information flows between test images
        try:
            episode = episode.to(self.device)
            return class_scores(self.pair_logits(episode), episode.support_labels, episode.ways).argmax(-1)
        finally:
            self.model.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "steps_done": self.steps_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.steps_done = state["steps_done"]
