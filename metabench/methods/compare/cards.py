"""The cards of family B, learning to compare: Siamese, Matching, Prototypical and Relation Networks
(read without torch)."""

from __future__ import annotations

from typing import Any

from metabench.config import EpisodeSpec
from metabench.methods.card import Field, MethodCard, Preset
from metabench.methods.compare.matching_card import MATCHING
from metabench.methods.compare.relation_card import RELATION


def protonet_episode_values(episode: EpisodeSpec) -> dict[str, Any]:
    """Snell et al. train with as many shots as they test with."""
    return {"train_shots": episode.shots}


PROTONET = MethodCard(
    name="protonet",
    family="B",
    paper="Snell et al., NIPS 2017",
    cite_key="snell2017prototypical",
    summary="a query's class is the nearest class mean (prototype) of Conv-4 embeddings",
    implementation="metabench.methods.compare.protonet:ProtoNet",
    fields=(
        Field("train_ways", "int", 60, "classes per meta-training episode (Snell et al.: 60)", positive=True),
        Field(
            "train_shots",
            "int",
            1,
            "support examples per class in training (the test's shots)",
            positive=True,
        ),
        Field("train_queries", "int", 5, "query examples per class in training", positive=True),
        Field("meta_batch", "int", 1, "episodes per update (the paper uses one)", positive=True),
        Field("lr", "float", 1e-3, "Adam's learning rate", positive=True),
        Field("lr_halve_every", "int", 2000, "episodes between halvings of the learning rate", positive=True),
        Field("hidden", "int", 64, "channels of each Conv-4 layer", positive=True),
        Field(
            "strategy",
            "str",
            "vectorized",
            "vectorized (one backbone pass for all tasks of a batch) or loop (one task at a time)",
            choices=("vectorized", "loop"),
        ),
    ),
    presets={
        "smoke": Preset(meta_steps=20, eval_episodes=64, config={"train_ways": 20}, validate_every=20),
        # 30-way episodes (half the paper's cost) at 3x the learning rate, halved every 500: 1000
        # episodes halved every 400 reached 96.8% on 5w1s (validation flat from 600 on); 1500 train
        # in about 8 minutes on a 2-core CPU.
        "quick": Preset(
            meta_steps=1500,
            eval_episodes=1000,
            config={"train_ways": 30, "lr": 3e-3, "lr_halve_every": 500},
            validate_every=250,
        ),
        # Snell et al. train until the validation loss stops improving; 20,000 episodes is about where
        # their Omniglot runs end (their code halves the rate every 20 epochs of 100 episodes).
        "paper": Preset(meta_steps=20_000, eval_episodes=1000),
    },
    episode_values=protonet_episode_values,
)

SIAMESE = MethodCard(
    name="siamese",
    family="B",
    paper="Koch, Zemel & Salakhutdinov, ICML DL Workshop 2015",
    cite_key="koch2015siamese",
    summary="a twin network learns same/different on pairs of training images; a query takes the class "
    "of its most similar support image",
    implementation="metabench.methods.compare.siamese:Siamese",
    fields=(
        Field(
            "network",
            "str",
            "conv4",
            "conv4: the Conv-4 of the other methods at 28x28 (comparable); koch: the paper's network "
            "(10x10, 7x7, 4x4, 4x4 convolutions) at 105x105, on the 28x28 cache upsampled (not the "
            "paper's pixels)",
            choices=("conv4", "koch"),
        ),
        Field(
            "features",
            "int",
            4096,
            "units of the twins' last (sigmoid) layer (Koch et al.: 4096)",
            positive=True,
        ),
        Field("hidden", "int", 64, "channels of each Conv-4 layer (network=conv4)", positive=True),
        Field(
            "batch_size",
            "int",
            128,
            "pairs per step, half same, half different (Koch et al.: 128)",
            positive=True,
        ),
        Field(
            "optimizer",
            "str",
            "adam",
            "adam, or sgd with momentum rising linearly from 0.5 (Koch et al.; their per-layer rates "
            "were never published, and re-implementations did better with Adam)",
            choices=("adam", "sgd"),
        ),
        Field(
            "lr", "float", 1e-3, "learning rate (Koch et al. searched 1e-4 to 1e-1 per layer)", positive=True
        ),
        Field(
            "momentum",
            "float",
            0.9,
            "sgd: the momentum reached at the end of the run [unconfirmed]",
            minimum=0,
            maximum=1,
        ),
        Field(
            "weight_decay",
            "float",
            1e-4,
            "L2 regularization (Koch et al. searched 0 to 0.1 per layer)",
            minimum=0,
        ),
        Field(
            "lr_decay",
            "float",
            0.99,
            "factor on the learning rate every decay_every steps (Koch et al.: 1% per epoch)",
            positive=True,
            maximum=1,
        ),
        Field("decay_every", "int", 1000, "steps between learning-rate decays", positive=True),
        Field(
            "distortions",
            "bool",
            True,
            "random affine distortions of each training image (Koch et al.: rotation, shear, scale, "
            "translation, each with probability 1/2)",
        ),
    ),
    presets={
        "smoke": Preset(
            meta_steps=40, eval_episodes=64, config={"batch_size": 32, "features": 256}, validate_every=20
        ),
        "quick": Preset(meta_steps=1500, eval_episodes=1000, validate_every=300),
        # Koch et al. train up to 200 epochs of up to 1.35M distorted pairs and keep the epoch with the
        # best one-shot validation; the epoch they stopped at is not reported. 50,000 steps of 128 pairs
        # (6.4M pairs, about 5 such epochs) is this benchmark's estimate.
        "paper": Preset(meta_steps=50_000, eval_episodes=1000),
    },
    model_selection="best-validation",
)

CARDS = (SIAMESE, MATCHING, PROTONET, RELATION)
