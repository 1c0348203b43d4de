"""The card of Matching Networks (Vinyals et al., NIPS 2016), read without torch."""

from __future__ import annotations

from typing import Any

from metabench.config import EpisodeSpec
from metabench.methods.card import Field, MethodCard, Preset


def matching_episode_values(episode: EpisodeSpec) -> dict[str, Any]:
    """Vinyals et al. train on episodes shaped like the test's: its ways and shots."""
    return {"train_ways": episode.ways, "train_shots": episode.shots}


# The reduced presets use the re-implementation's cosine (divided by the support norm only) and 3x its
# learning rate. The paper's cosine, bounded in [0, 1] between non-negative features, learns slowly: at
# 32 tasks a step (5w1s, one thread), its validation accuracy was 0.80 / 0.81 / 0.83 after 250 / 500 /
# 1000 steps (test 0.829 after 1000), the re-implementation's 0.93 / 0.95 after 125 / 250 (test 0.947),
# and 0.94 / 0.96 with lr 3e-3.
REDUCED = {"cosine": "support", "lr": 3e-3}
# A 5-way 1-shot task with one query per class embeds 10 images; the reduced presets take as many tasks a
# step as make their 5w1s number of images, so every shape's step costs about the same.
FIVE_WAY_IMAGES = 10


def matching_presets(episode: EpisodeSpec) -> dict[str, Preset]:
    """The budgets of a shape. Quick: 32 tasks of 5w1s (320 images) took 0.52 to 0.58 s a step on one
    thread of the shared CPU, so 900 steps train in about 8 minutes; 8 tasks of 20w1s, 0.56 s."""

    def tasks(five_way_tasks: int) -> int:
        return max(1, five_way_tasks * FIVE_WAY_IMAGES // (episode.ways * (episode.shots + 1)))

    return {
        "smoke": Preset(20, 64, {**REDUCED, "meta_batch": tasks(4)}, validate_every=20),
        "quick": Preset(900, 1000, {**REDUCED, "meta_batch": tasks(32)}, validate_every=300),
        # The re-implementation's budget: 200 epochs of 1000 updates of 32 episodes, about 6.4 million
        # episodes; Vinyals et al.'s own count is not in our sources [unconfirmed].
        "paper": Preset(200_000, 1000),
    }


# Vinyals et al.'s optimizer, learning rate, episode count and episodes per update are not in our
# sources [unconfirmed]; the only detailed source, the AntreasAntoniou/MatchingNetworks re-implementation,
# trains with Adam at 1e-3 on 32 episodes of one query each per update, 200 epochs of 1000 updates.
MATCHING = MethodCard(
    name="matching",
    family="B",
    paper="Vinyals et al., NIPS 2016",
    cite_key="vinyals2016matching",
    summary="softmax attention over cosine similarities to the support examples, summed by their labels",
    implementation="metabench.methods.compare.matching:MatchingNet",
    fields=(
        Field("train_ways", "int", 5, "classes per meta-training episode (the test's ways)", positive=True),
        Field(
            "train_shots",
            "int",
            1,
            "support examples per class in training (the test's shots)",
            positive=True,
        ),
        Field(
            "train_queries",
            "int",
            1,
            "query examples per class in training [unconfirmed]; 1 is the nearest to the re-implementation's "
            "one query per episode",
            positive=True,
        ),
        Field(
            "meta_batch",
            "int",
            32,
            "episodes per update [unconfirmed]; 32 as the re-implementation",
            positive=True,
        ),
        Field(
            "lr",
            "float",
            1e-3,
            "Adam's learning rate [unconfirmed]; Adam 1e-3 as the re-implementation",
            positive=True,
        ),
        Field(
            "hidden", "int", 64, "channels of each Conv-4 layer, and so the embedding's size", positive=True
        ),
        Field(
            "cosine",
            "str",
            "both",
            "both: the paper's cosine similarity; support: divide by the support norm only "
            "(the re-implementation), so the query's norm sharpens its attention",
            choices=("both", "support"),
        ),
        Field(
            "fce",
            "bool",
            False,
            "full context embeddings (BiLSTM over the support, attention LSTM for queries); "
            "off: no help on Omniglot, not in the paper's Table 1",
        ),
        Field(
            "fce_steps",
            "int",
            5,
            "steps K of the query's attention LSTM with fce [unconfirmed]; 5 as the re-implementation",
            positive=True,
        ),
    ),
    presets=matching_presets(EpisodeSpec(5, 1, 15)),
    presets_by_shape=matching_presets,
    episode_values=matching_episode_values,
)
