"""The cards of family B, learning to compare: Prototypical Networks (read without torch)."""

from __future__ import annotations

from typing import Any

from metabench.config import EpisodeSpec
from metabench.methods.card import Field, MethodCard, Preset


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

CARDS = (PROTONET,)
