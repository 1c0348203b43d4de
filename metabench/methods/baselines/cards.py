"""The cards of the baselines: pre-train + fine-tune and raw-pixel nearest neighbour (read without torch)."""

from __future__ import annotations

from metabench.methods.card import Field, MethodCard, Preset

PRETRAIN = MethodCard(
    name="pretrain",
    family="baseline",
    paper="lecture baseline (cf. Chen et al., ICLR 2019)",
    summary="train a classifier on all training classes, then fit a new linear head per task",
    implementation="metabench.methods.baselines.pretrain:Pretrain",
    fields=(
        Field("batch_size", "int", 128, "labeled training images per step", positive=True),
        Field("lr", "float", 1e-3, "Adam's learning rate", positive=True),
        Field("hidden", "int", 64, "channels of each Conv-4 layer", positive=True),
        Field(
            "head_steps",
            "int",
            100,
            "full-batch Adam steps that fit each task's new linear head",
            positive=True,
        ),
        Field("head_lr", "float", 0.1, "learning rate of the head's fit", positive=True),
        Field("head_weight_decay", "float", 1e-3, "weight decay of the head's fit", minimum=0),
        Field(
            "normalize",
            "bool",
            True,
            "L2-normalize the frozen features before the head, so one head_lr suits every backbone",
        ),
    ),
    presets={
        "smoke": Preset(
            meta_steps=40, eval_episodes=64, config={"batch_size": 64, "head_steps": 50}, validate_every=40
        ),
        # The same CPU time as MAML's quick 5-way run (1000 meta-batches of 16 tasks, about 340 s of
        # one core; a step of 128 images costs about 0.26 s): 1300 steps, 166,400 images.
        "quick": Preset(meta_steps=1300, eval_episodes=1000, validate_every=260),
        # Chen et al. train their baselines for hundreds of epochs; 30,000 steps of 128 images is
        # about 47 passes over the 82,240 Vinyals training images.
        "paper": Preset(meta_steps=30_000, eval_episodes=1000),
    },
)

PIXELS_NN = MethodCard(
    name="pixels-nn",
    family="baseline",
    paper="raw-pixel nearest neighbour",
    summary="a query takes the label of the closest support image in pixel space; nothing is learned",
    implementation="metabench.methods.baselines.pixels_nn:PixelsNN",
    fields=(
        Field(
            "metric", "str", "euclidean", "distance between flattened images", choices=("euclidean", "cosine")
        ),
    ),
    presets={
        "smoke": Preset(meta_steps=0, eval_episodes=64),
        "quick": Preset(meta_steps=0, eval_episodes=1000),
        "paper": Preset(meta_steps=0, eval_episodes=1000),
    },
    needs_training=False,
)

CARDS = (PRETRAIN, PIXELS_NN)
