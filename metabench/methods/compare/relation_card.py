"""The card of Relation Networks (Sung et al., CVPR 2018), read without torch (to join compare/cards.py)."""

from __future__ import annotations

from typing import Any

from metabench.config import MAX_SAMPLES_PER_CLASS, EpisodeSpec
from metabench.methods.card import Field, MethodCard, Preset


def relation_episode_values(episode: EpisodeSpec) -> dict[str, Any]:
    """The authors' query images per training class (their README's -b): 19 for 5-way 1-shot, 15 for
    5-way 5-shot, 10 for 20-way 1-shot, 5 for 20-way 5-shot. Other shapes take the nearer of those
    (up to 5 ways or more; one shot or more), within Omniglot's 20 drawings per class."""
    few_ways = episode.ways <= 5
    queries = (19 if few_ways else 10) if episode.shots == 1 else (15 if few_ways else 5)
    return {"train_queries": max(1, min(queries, MAX_SAMPLES_PER_CLASS - episode.shots))}


# One thread, CPU time of a training step (the authors' queries per class): 97 ms 5w1s, 96 ms 5w5s,
# 182 ms 20w5s, 399 ms 20w1s (its 200 queries against 20 classes).
PRESETS = {
    "smoke": Preset(meta_steps=20, eval_episodes=64, config={"train_queries": 5}, validate_every=20),
    # The authors' rate, halved every 1000 episodes instead of 100,000 (after 3000 episodes 96.0% on
    # 5w1s validation, 95.1% unhalved). 4000 episodes train in about 8 minutes on one thread and reach
    # 96.0% on 500 validation tasks with batch statistics, 95.4% with running ones.
    "quick": Preset(meta_steps=4000, eval_episodes=1000, config={"lr_halve_every": 1000}),
    # The authors' training length (their scripts' default --episode).
    "paper": Preset(meta_steps=1_000_000, eval_episodes=1000),
}
# 20-way steps cost 2 to 4 times more: the schedule compressed into 1500 episodes, about 12 minutes for
# 20w1s, which reach 89.9% on 500 validation tasks with batch statistics, 89.7% with running ones.
PRESETS_20_WAY = PRESETS | {
    "quick": Preset(meta_steps=1500, eval_episodes=1000, config={"lr_halve_every": 500}),
}


def relation_presets(episode: EpisodeSpec) -> dict[str, Preset]:
    """The 5-way budgets up to 5 ways; fewer quick steps beyond, where a step scores 4x more pairs."""
    return PRESETS if episode.ways <= 5 else PRESETS_20_WAY


RELATION = MethodCard(
    name="relation",
    family="B",
    paper="Sung et al., CVPR 2018",
    cite_key="sung2018learning",
    summary="a learned relation module scores every query against every class's summed feature maps",
    implementation="metabench.methods.compare.relation:RelationNet",
    fields=(
        Field(
            "train_queries",
            "int",
            19,
            "query images per class in training (authors: 19 5w1s, 15 5w5s, 10 20w1s, 5 20w5s)",
            positive=True,
        ),
        Field("meta_batch", "int", 1, "episodes per update (the authors use one)", positive=True),
        Field("lr", "float", 1e-3, "Adam's learning rate, for both modules", positive=True),
        Field(
            "lr_halve_every", "int", 100_000, "episodes between halvings of the learning rate", positive=True
        ),
        Field("clip_norm", "float", 0.5, "gradient-norm clip, applied to each module apart", positive=True),
        Field("hidden", "int", 64, "channels of the embedding and relation modules", positive=True),
        Field("relation_dim", "int", 8, "units of the relation module's hidden layer", positive=True),
        Field(
            "test_statistics",
            "str",
            "batch",
            "BatchNorm at test: batch (the authors': statistics of the test batch, transductive) "
            "or running (statistics kept in training: queries independent)",
            choices=("batch", "running"),
        ),
    ),
    presets=PRESETS,
    # The authors' code normalizes with the test batch's BatchNorm statistics (momentum 1, never eval()).
    transductive=True,
    episode_values=relation_episode_values,
    presets_by_shape=relation_presets,
)
