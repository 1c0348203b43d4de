"""The cards of family B, learning to compare: Siamese, Matching, Prototypical and Relation Networks
(read without torch)."""

from __future__ import annotations

from typing import Any

from metabench.config import MAX_SAMPLES_PER_CLASS, EpisodeSpec
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
    """The budgets of a shape. Quick, measured on one thread of the shared CPU (process time): 32 tasks
    of 5w1s (320 images) took 0.51 to 0.58 s a step, 900 steps 456 s, test accuracy 0.972 (1000
    episodes); 8 tasks of 20w1s 0.42 to 0.56 s, 900 steps 381 s, test accuracy 0.932."""

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


def relation_episode_values(episode: EpisodeSpec) -> dict[str, Any]:
    """The authors' query images per training class (their README's -b): 19 for 5-way 1-shot, 15 for
    5-way 5-shot, 10 for 20-way 1-shot, 5 for 20-way 5-shot. Other shapes take the nearer of those
    (up to 5 ways or more; one shot or more), within Omniglot's 20 drawings per class."""
    few_ways = episode.ways <= 5
    queries = (19 if few_ways else 10) if episode.shots == 1 else (15 if few_ways else 5)
    return {"train_queries": max(1, min(queries, MAX_SAMPLES_PER_CLASS - episode.shots))}


# One thread, CPU time of a training step (the authors' queries per class): 97 ms 5w1s, 96 ms 5w5s,
# 182 ms 20w5s, 399 ms 20w1s (its 200 queries against 20 classes).
RELATION_PRESETS = {
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
RELATION_PRESETS_20_WAY = RELATION_PRESETS | {
    "quick": Preset(meta_steps=1500, eval_episodes=1000, config={"lr_halve_every": 500}),
}


def relation_presets(episode: EpisodeSpec) -> dict[str, Preset]:
    """The 5-way budgets up to 5 ways; fewer quick steps beyond, where a step scores 4x more pairs."""
    return RELATION_PRESETS if episode.ways <= 5 else RELATION_PRESETS_20_WAY


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
    presets=RELATION_PRESETS,
    # The authors' code normalizes with the test batch's BatchNorm statistics (momentum 1, never eval()).
    transductive=True,
    episode_values=relation_episode_values,
    presets_by_shape=relation_presets,
)


SIAMESE = MethodCard(
    name="siamese",
    family="B",
    paper="Koch et al., ICML DL Workshop 2015",
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
