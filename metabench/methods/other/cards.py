"""The cards of family C, other: learned optimizers and black-box learners (read without torch)."""

from __future__ import annotations

import dataclasses
from typing import Any

from metabench.config import EpisodeSpec
from metabench.methods.card import Field, MethodCard, Preset

# --- the meta-learner LSTM -----------------------------------------------------------------------


def lstm_budgets(episode: EpisodeSpec) -> dict[str, Preset]:
    """Smoke, quick and paper budgets. The paper's: 75,000 episodes for 1-shot, 50,000 for 5-shot.

    The reduced budgets take a larger meta learning rate than the paper's 1e-3 (runs report it): in 30
    steps 1e-2 learns most (test accuracy 0.27 -> 0.63, 3e-3: 0.49); over 400 steps of 5w1s 3e-3 did
    best (0.80 on 100 test episodes after 400 steps, 1e-2: 0.74).
    Quick: measured on one thread of the 2-core VM under load from other jobs (CPU time, torch 2.13):
    a 5w1s step (12 updates of 28,485 learner parameters, 75 queries) 0.33 to 0.37 s and a test episode
    0.14 s; 20w1s 0.50 s and 0.25 s; 5w5s (8 updates) 0.32 s and 0.16 s. With 5 validations of 100
    episodes and the 1000 test episodes that puts 1500 steps (600 for 20-way) near 9 minutes of one
    thread, less on two.
    """
    paper_steps = 50_000 if episode.shots >= 5 else 75_000
    quick_steps = 600 if episode.ways >= 20 else 1500
    return {
        "smoke": Preset(30, 64, {"meta_lr": 1e-2, "train_queries": 5}, validate_every=10),
        "quick": Preset(quick_steps, 1000, {"meta_lr": 3e-3}, validate_every=quick_steps // 5),
        "paper": Preset(paper_steps, 1000),
    }


def lstm_episode_values(episode: EpisodeSpec) -> dict[str, Any]:
    """The authors' 5-shot config (train-imagenet-5shot.lua) for 5 shots and more: 8 updates of the
    whole 25-image support set and BN momentum 0.95; fewer shots take the 1-shot config."""
    return {"inner_steps": 8, "bn_momentum": 0.95} if episode.shots >= 5 else {}


LSTM_OPTIMIZER = MethodCard(
    name="lstm-optimizer",
    family="C",
    paper="Ravi & Larochelle, ICLR 2017",
    cite_key="ravi2017optimization",
    summary="an LSTM whose cell state is a classifier's parameters learns to update them from gradients",
    implementation="metabench.methods.other.lstm_optimizer:LstmOptimizer",
    # The authors' 1-shot config (twitter/meta-learning-lstm, config/lstm/train-imagenet-1shot.lua).
    fields=(
        # The authors take nEpochs passes over the support set in minibatches of 5: 12 updates for 5-way
        # 1-shot (8 for 5-shot); here every update sees the whole support set.
        Field("inner_steps", "int", 12, "updates of the learner per task", positive=True),
        Field(
            "train_queries",
            "int",
            15,
            "query examples per class in meta-training tasks (nEval)",
            positive=True,
        ),
        Field("meta_batch", "int", 1, "episodes per meta-update (the paper uses one)", positive=True),
        Field("meta_lr", "float", 1e-3, "Adam's learning rate for the meta-learner", positive=True),
        Field("max_grad_norm", "float", 0.25, "clip of the meta-gradient's total norm", positive=True),
        Field("hidden", "int", 20, "units of the first (ordinary) LSTM layer (nHidden)", positive=True),
        Field("filters", "int", 32, "the learner's convolution channels", positive=True),
        Field(
            "bn_momentum",
            "float",
            0.9,
            "the learner's BatchNorm momentum (BN_momentum)",
            positive=True,
            maximum=1,
        ),
        Field("bn_eps", "float", 1e-3, "the learner's BatchNorm epsilon", positive=True),
    ),
    presets=lstm_budgets(EpisodeSpec(5, 1, 15)),
    presets_by_shape=lstm_budgets,
    episode_values=lstm_episode_values,
)

# --- SNAIL ---------------------------------------------------------------------------------------

# Adam at 1e-3 in the reduced presets, not 1e-4: SNAIL first sits ~100 steps on a chance plateau;
# validation (5w1s, 16 tasks a step) after 200 steps was 0.48 at 1e-3, 0.32 at 3e-4, chance at 3e-3.
SNAIL_PRESETS = {
    # Validation accuracy 0.18 -> 0.36 after 200 steps of 8 tasks: 30 to 60 s on one shared thread.
    "smoke": Preset(200, 64, {"meta_batch": 8, "lr": 1e-3}, validate_every=100),
    # 16 tasks a step. Measured on one thread of the shared 2-core CPU (median of 5 steps): 216 ms,
    # and 268 / 275 / 275 ms for 5w5s / 20w1s / 20w5s at 5 / 4 / 1 tasks; 2000 steps then train in
    # 7 to 9 minutes on one thread. Validation: 0.48 / 0.62 / 0.79 after 200 / 300 / 600 steps.
    "quick": Preset(2000, 1000, {"meta_batch": 16, "lr": 1e-3}, validate_every=400),
    # The paper's iteration count is unconfirmed; eambutu/snail-pytorch trains 100 epochs of 10,000
    # updates of 32 episodes (src/train.py defaults), which its Omniglot results in the README used.
    "paper": Preset(1_000_000, 1000),
}


def snail_presets(episode: EpisodeSpec) -> dict[str, Preset]:
    """A reduced preset takes as many tasks per step as make its 5-way 1-shot number of images, so a
    20-way or 5-shot step costs about as much as a 5-way 1-shot one (16 tasks of 20w5s: 35x)."""
    scaled = {}
    for name, preset in SNAIL_PRESETS.items():
        if "meta_batch" in preset.config:
            images = preset.config["meta_batch"] * 5 * 2  # a 5w1s task with one query per class
            meta_batch = max(1, images // (episode.ways * (episode.shots + 1)))
            preset = dataclasses.replace(preset, config={**preset.config, "meta_batch": meta_batch})
        scaled[name] = preset
    return scaled


SNAIL = MethodCard(
    name="snail",
    family="C",
    paper="Mishra et al., ICLR 2018",
    cite_key="mishra2018simple",
    summary="causal temporal convolutions and attention read the labelled support, then the query",
    implementation="metabench.methods.other.snail:Snail",
    # Mishra et al.'s values where the paper gives them; [unconfirmed] ones (its Appendix A was not
    # retrieved) are eambutu/snail-pytorch's defaults (src/train.py).
    fields=(
        Field(
            "train_queries",
            "int",
            1,
            "queries per class of a training task, each ending its own sequence",
            positive=True,
        ),
        Field(
            "meta_batch",
            "int",
            32,
            "tasks per update [unconfirmed: the re-implementation's 32]",
            positive=True,
        ),
        Field(
            "lr", "float", 1e-4, "Adam's learning rate [unconfirmed: the re-implementation's]", positive=True
        ),
        Field("hidden", "int", 64, "Conv-4 channels and embedding size", positive=True),
    ),
    presets=SNAIL_PRESETS,
    presets_by_shape=snail_presets,
)

# --- MANN ----------------------------------------------------------------------------------------

MANN_SMOKE = {"lr": 3e-3, "controller": 100, "memory_slots": 32, "train_queries": 4, "meta_batch": 8}
# Quick: the paper's architecture, 3x the learning rate, 4 query continuations per class instead of
# 9 (fewer rows per step, more steps). Steps per shape (ways, shots), from one-thread step times
# measured on the shared 2-core VM while other jobs ran (load ~7): 133 / 398 / 672 / 2131 ms for
# 5w1s / 5w5s / 20w1s / 20w5s; at load 1.5 a 5w1s step took ~55 ms.
MANN_QUICK = {"lr": 3e-3, "train_queries": 4}
MANN_QUICK_STEPS = {(5, 1): 10_000, (5, 5): 3300, (20, 1): 2000, (20, 5): 600}
MANN_PRESETS = {
    # The paper's architecture barely leaves chance in a few hundred steps; a smaller controller and
    # memory learn visibly in 400 steps, seconds on one thread (20 steps stayed at chance: 20.7%).
    "smoke": Preset(meta_steps=400, eval_episodes=64, config=MANN_SMOKE, validate_every=200),
    "quick": Preset(MANN_QUICK_STEPS[(5, 1)], 1000, MANN_QUICK, validate_every=MANN_QUICK_STEPS[(5, 1)] // 5),
    # 100,000 batches of 16 (mann-sk `--num_epoches`), Adam 1e-3 (both re-implementations) [unconfirmed].
    "paper": Preset(meta_steps=100_000, eval_episodes=1000),
}


def mann_presets(episode: EpisodeSpec) -> dict[str, Preset]:
    """A step's cost grows with the support's length (sequential) and the query rows, so the larger
    shapes get fewer quick steps in the same minutes; other shapes inversely to the support's length."""
    fallback = max(100, MANN_QUICK_STEPS[(5, 1)] * 5 // (episode.ways * episode.shots))
    steps = MANN_QUICK_STEPS.get((episode.ways, episode.shots), fallback)
    return {**MANN_PRESETS, "quick": Preset(steps, 1000, MANN_QUICK, validate_every=max(1, steps // 5))}


def mann_episode_values(episode: EpisodeSpec) -> dict[str, Any]:
    """As many training shots as the test's, and 10 instances per class in all (Santoro's episodes)."""
    return {"train_shots": episode.shots, "train_queries": max(1, 10 - episode.shots)}


MANN = MethodCard(
    name="mann",
    family="C",
    paper="Santoro et al., ICML 2016",
    cite_key="santoro2016meta",
    summary="an LSTM with an external memory (least-recently-used writes) binds images to labels as it reads",
    implementation="metabench.methods.other.mann:Mann",
    # Re-implementations followed: mann-td = tristandeleu/ntm-one-shot, mann-sk = snowkylin/ntm; Santoro's
    # own text is not in our stores, so every value is [unconfirmed] as the paper's.
    fields=(
        Field("controller", "int", 200, "LSTM hidden units", positive=True),
        Field("memory_slots", "int", 128, "memory rows", positive=True),
        Field("memory_width", "int", 40, "memory row width", positive=True),
        Field("read_heads", "int", 4, "read heads (one write weighting each)", positive=True),
        Field("gamma", "float", 0.95, "usage decay", positive=True, maximum=1),
        # Santoro's eq. 23 writes the read key itself (mann-sk readme); both re-implementations write a
        # separate tanh add vector by default, and their published accuracies come from that.
        Field(
            "write_key", "bool", False, "write the read key itself (the paper's eq. 23), not an add vector"
        ),
        Field("train_shots", "int", 1, "support examples per class in training (the test's)", positive=True),
        Field(
            "train_queries", "int", 9, "query continuations per class in training (10 - shots)", positive=True
        ),
        Field("meta_batch", "int", 16, "episodes per update", positive=True),
        Field("lr", "float", 1e-3, "Adam's learning rate", positive=True),
    ),
    presets=MANN_PRESETS,
    presets_by_shape=mann_presets,
    episode_values=mann_episode_values,
)

CARDS = (LSTM_OPTIMIZER, MANN, SNAIL)
