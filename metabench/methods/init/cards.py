"""The cards of family A, learning to initialize: MAML and its kin (read without torch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from metabench.config import EpisodeSpec
from metabench.methods.card import Field, MethodCard, Preset

STRATEGIES = ("auto", "vectorized", "loop")
# How a meta-training step runs, for every method of the family (each keeps the per-task reference).
STRATEGY_FIELD = Field(
    "strategy",
    "str",
    "auto",
    "vectorized (torch.func.vmap over tasks), loop (per-task reference) or auto (measured per "
    "device and task shape)",
    choices=STRATEGIES,
)

MAML_FIELDS = (
    Field("inner_steps", "int", 1, "gradient steps on the support set during meta-training", positive=True),
    Field("inner_lr", "float", 0.4, "step size of the inner gradient steps", positive=True),
    Field("test_inner_steps", "int", 3, "gradient steps on the support set at evaluation", positive=True),
    Field("meta_batch", "int", 32, "tasks per meta-update", positive=True),
    Field("meta_lr", "float", 1e-3, "Adam's learning rate for the meta-update", positive=True),
    # Finn's code draws as many query examples per class as there are shots (see maml_episode_values).
    Field("train_queries", "int", 1, "query examples per class in meta-training tasks", positive=True),
    Field("hidden", "int", 64, "channels of each Conv-4 layer", positive=True),
    STRATEGY_FIELD,
)


def maml_episode_values(episode: EpisodeSpec) -> dict[str, Any]:
    """Finn et al.: 20-way uses 5 inner steps of 0.1 and 16 tasks per meta-batch; queries = shots.

    The paper tests 5 and 20 ways only; 20 and more take the 20-way values, fewer the 5-way ones.
    The 20-way test-time steps are not given; it uses as many as in training.
    """
    values: dict[str, Any] = {"train_queries": episode.shots}
    if episode.ways >= 20:
        values.update(inner_steps=5, inner_lr=0.1, meta_batch=16, test_inner_steps=5)
    return values


def budgets(first_order: bool, twenty_way: bool) -> dict[str, Preset]:
    """The smoke, quick and paper budgets of MAML or first-order MAML for 5-way or 20-way tasks.

    The reduced budgets (a CPU affords ~1% of the paper's 60,000 meta-iterations) differ from the
    paper's config, and runs report them as such:
    - meta learning rate 3e-3 instead of 1e-3: measured best at that length (5w1s: 84% -> 88%).
    - 20-way: one inner step instead of five and a meta-batch of 8, so a run fits the same minutes
      as a 5-way one (a 20-way task costs 4x as much per inner step).
    - first order: the inner step is 5x smaller (0.08 for 5-way, 0.02 for 20-way). With the paper's
      step and no second-order term, first-order MAML barely moves in 1000 meta-iterations
      (5w1s: 70% against 83%); the full-length paper budget keeps the paper's step.
    """
    config: dict[str, Any] = {"meta_lr": 3e-3}
    if twenty_way:
        config["inner_steps"] = 1
    if first_order:
        config["inner_lr"] = 0.02 if twenty_way else 0.08
    smoke_batch, quick_batch, quick_steps = (2, 8, 600) if twenty_way else (4, 16, 1000)
    return {
        "smoke": Preset(10, 64, {**config, "meta_batch": smoke_batch}, validate_every=10),
        "quick": Preset(
            quick_steps, 1000, {**config, "meta_batch": quick_batch}, validate_every=quick_steps // 5
        ),
        "paper": Preset(60_000, 1000),
    }


def maml_card(
    name: str,
    paper: str,
    cite_key: str,
    summary: str,
    implementation: str,
    first_order: bool,
    fields: tuple[Field, ...] = MAML_FIELDS,
    episode_values: Callable[[EpisodeSpec], dict[str, Any]] = maml_episode_values,
) -> MethodCard:
    """A card of MAML's kind: MAML's network, config, budgets and BatchNorm, which normalizes with the
    statistics of the current batch at test time too (transductive), as MAML's code does."""
    return MethodCard(
        name=name,
        family="A",
        paper=paper,
        cite_key=cite_key,
        summary=summary,
        implementation=implementation,
        fields=fields,
        presets=budgets(first_order, twenty_way=False),
        presets_by_shape=lambda episode: budgets(first_order, twenty_way=episode.ways >= 20),
        transductive=True,
        episode_values=episode_values,
    )


MAML = maml_card(
    "maml",
    "Finn et al., ICML 2017",
    "finn2017model",
    "learn an initialization that adapts to a task in a few gradient steps (second order)",
    "metabench.methods.init.maml:Maml",
    first_order=False,
)
FOMAML = maml_card(
    "fomaml",
    "Nichol et al., arXiv 2018",
    "nichol2018first",
    "MAML with the inner gradients treated as constants (no second derivatives)",
    "metabench.methods.init.maml:FoMaml",
    first_order=True,
)
# "the same model architectures as the original MAML authors" (Raghu et al., section 4); their Omniglot
# hyperparameters (appendix C.4) are not in our stores, so MAML's are used [unconfirmed].
ANIL = maml_card(
    "anil",
    "Raghu et al., ICLR 2020",
    "raghu2020rapid",
    "MAML with the inner loop on the head alone: the body is meta-learned but never adapted",
    "metabench.methods.init.anil:Anil",
    first_order=False,
)


def _meta_sgd_field(field: Field) -> Field:
    """MAML's fields with Meta-SGD's meaning: one inner step at training and test, and `inner_lr` the
    value every learned step size starts from."""
    if field.name == "inner_lr":
        return replace(field, help="initial value of every learned per-parameter step size")
    if field.name == "test_inner_steps":
        return replace(field, default=1)
    return field


def meta_sgd_episode_values(episode: EpisodeSpec) -> dict[str, Any]:
    """MAML's 20-way values (step size 0.1, 16 tasks per meta-batch) but one step, as Meta-SGD adapts
    "in just one step" (Li et al., abstract)."""
    return maml_episode_values(episode) | (
        {"inner_steps": 1, "test_inner_steps": 1} if episode.ways >= 20 else {}
    )


# Li et al.'s Omniglot network, meta-batch, meta learning rate and initial α are not in our stores;
# MAML's are used, with one inner step [unconfirmed].
META_SGD = maml_card(
    "meta-sgd",
    "Li et al., arXiv 2017",
    "li2017meta",
    "MAML that also meta-learns a step size for every parameter element (one inner step)",
    "metabench.methods.init.meta_sgd:MetaSgd",
    first_order=False,
    fields=tuple(_meta_sgd_field(field) for field in MAML_FIELDS),
    episode_values=meta_sgd_episode_values,
)


MAMLPP_FIELDS = (
    Field("inner_steps", "int", 5, "inner gradient steps, in training and at test", positive=True),
    Field(
        "inner_lr",
        "float",
        0.1,
        "step size of the inner steps (the initial value when learned)",
        positive=True,
    ),
    Field("meta_batch", "int", 8, "tasks per meta-update", positive=True),
    Field(
        "meta_lr",
        "float",
        1e-3,
        "Adam's meta learning rate (the start of the cosine annealing)",
        positive=True,
    ),
    Field(
        "min_meta_lr",
        "float",
        1e-5,
        "where the cosine annealing of the meta learning rate ends",
        positive=True,
    ),
    Field("train_queries", "int", 1, "query examples per class in meta-training tasks", positive=True),
    Field("hidden", "int", 64, "channels of each convolution", positive=True),
    Field("epochs", "int", 100, "epochs a run is divided into for the schedules below", positive=True),
    Field("multi_step_loss", "bool", True, "MSL: the query losses after every inner step, annealed weights"),
    Field(
        "msl_epochs", "int", 10, "epochs over which the multi-step loss anneals to the final step", minimum=0
    ),
    Field("learned_step_sizes", "bool", True, "LSLR: one learned inner step size per layer and step"),
    Field("per_step_bn_weights", "bool", True, "BNWB: BatchNorm weights and biases per inner step"),
    Field("per_step_bn_statistics", "bool", True, "BNRS: BatchNorm running statistics per inner step"),
    Field("first_order_epochs", "int", 0, "DA: first-order meta-gradients for this many epochs", minimum=0),
    Field("cosine_meta_lr", "bool", True, "CA: cosine annealing of the meta learning rate, per epoch"),
    Field(
        "test_statistics",
        "str",
        "batch",
        "BatchNorm statistics of the queries at test: batch (the authors' code; transductive) or running "
        "(the per-step running statistics; each query on its own)",
        choices=("batch", "running"),
    ),
    STRATEGY_FIELD,
)


def mamlpp_budgets(twenty_way: bool) -> dict[str, Preset]:
    """MAML++'s budgets. The paper's: 100 epochs of 500 meta-iterations (all released Omniglot configs).

    The reduced budgets keep every other setting of the paper's config, the schedules (multi-step loss
    over the first tenth, cosine meta learning rate) running over the shorter run. Its five second-order
    steps of a stride-1 network cost about 2.4 s per 5-way meta-batch of 8 on one CPU thread (maml: 0.1
    s per 16), so the quick budgets are short: 300 meta-iterations, and for 20-way (4x the images per
    task) 2 tasks per meta-batch instead of 8.
    """
    quick = {"meta_batch": 2} if twenty_way else {}
    return {
        "smoke": Preset(10, 64, {"meta_batch": 2, "inner_steps": 2}, validate_every=5),
        "quick": Preset(300, 1000, quick, validate_every=60),
        "paper": Preset(50_000, 1000, validate_every=500),
    }


MAMLPP = MethodCard(
    name="maml++",
    family="A",
    paper="Antoniou et al., ICLR 2019",
    cite_key="antoniou2019train",
    summary="MAML with multi-step loss, learned per-step step sizes, per-step BatchNorm and annealing",
    implementation="metabench.methods.init.mamlpp:MamlPlusPlus",
    fields=MAMLPP_FIELDS,
    presets=mamlpp_budgets(twenty_way=False),
    presets_by_shape=lambda episode: mamlpp_budgets(twenty_way=episode.ways >= 20),
    transductive=True,  # with test_statistics=batch, the default; the instance says which
    model_selection="best-validation",
    ensembles=True,  # the paper's results are top-5 ensembles: model_selection=top-5-ensemble
)

# The defaults are the 5-way Omniglot commands of the authors' README (openai/supervised-reptile, "commands
# used for the paper"); reptile_episode_values holds the 20-way ones.
REPTILE_FIELDS = (
    Field("train_shots", "int", 10, "examples per class in a meta-training task", positive=True),
    Field("inner_batch", "int", 10, "images per inner Adam step during meta-training", positive=True),
    Field("inner_iters", "int", 5, "inner Adam steps per meta-training task", positive=True),
    Field("inner_lr", "float", 1e-3, "step size of the inner Adam (beta1 = 0, beta2 = 0.999)", positive=True),
    Field("meta_step", "float", 1.0, "outer step size ε at the start of the run", minimum=0.0),
    Field("meta_step_final", "float", 0.0, "outer step size ε at the end (linear annealing)", minimum=0.0),
    Field("meta_batch", "int", 5, "tasks per meta-update", positive=True),
    Field("eval_batch", "int", 5, "support images per Adam step when adapting at test time", positive=True),
    Field("eval_iters", "int", 50, "Adam steps on the support set at test time", positive=True),
    Field("hidden", "int", 64, "channels of each Conv-4 layer", positive=True),
    Field(
        "transductive",
        "bool",
        False,
        "predict a task's queries in one batch through BatchNorm (the paper's 'Reptile + Transduction'); "
        "otherwise each query passes with the support set alone, so BatchNorm sees no other query",
    ),
    STRATEGY_FIELD,
)


def reptile_episode_values(episode: EpisodeSpec) -> dict[str, Any]:
    """The authors' 20-way commands: inner batch 20, 10 inner steps of 5e-4, test batches of 10.

    The paper tests 5 and 20 ways only; 20 and more take the 20-way values, fewer the 5-way ones.
    """
    if episode.ways >= 20:
        return {"inner_batch": 20, "inner_iters": 10, "inner_lr": 5e-4, "eval_batch": 10}
    return {}


def reptile_budgets(twenty_way: bool) -> dict[str, Preset]:
    """The smoke, quick and paper budgets of Reptile for 5-way or 20-way tasks.

    Only the number of meta-steps is reduced; every hyperparameter is
    the paper's. ε still anneals from 1 to 0 over the shorter run, as the authors' train.py anneals it
    over whatever --meta-iters it is given. Measured on one thread of the shared 2-core VM (torch 2.13,
    CPU, under load from other work, so roughly): a 5-way step (5 tasks x 5 Adam steps of 10 images)
    takes 130 to 140 ms; testing 25 5-way 1-shot tasks of 15 queries a class about 8 s (50 Adam steps a
    task 4.3 s, every query in a batch with the whole support set 3.8 s), so 1000 test episodes take
    about 5.5 min and each validation of 100 about 35 s. A 20-way step took 0.6 to 1.3 s and 25 20-way
    test tasks 60 to 130 s: each of a task's 300 queries passes with its 20 support images.
    - quick, 5-way: 1000 of the paper's 100,000 steps (2.5 min), two validations, 1000 test episodes:
      about 9 min in all.
    - quick, 20-way: 300 of the paper's 200,000 steps, one validation, and the 1000 test episodes of
      every quick 20-way run (so that its results pair with theirs), which cost most of its time.
    - smoke: 20 steps of a half-width network (32 channels) tested after 10 Adam steps instead of 50,
      a check that the pipeline runs (about 4x cheaper to test), not of the accuracy.
    """
    quick = Preset(300, 1000, validate_every=300) if twenty_way else Preset(1000, 1000, validate_every=500)
    return {
        "smoke": Preset(20, 64, {"hidden": 32, "eval_iters": 10}, validate_every=20),
        "quick": quick,
        "paper": Preset(200_000 if twenty_way else 100_000, 1000),
    }


REPTILE = MethodCard(
    name="reptile",
    family="A",
    paper="Nichol et al., arXiv 2018",
    cite_key="nichol2018first",
    summary="learn an initialization by moving it toward the weights a few Adam steps reach on each task",
    implementation="metabench.methods.init.reptile:Reptile",
    fields=REPTILE_FIELDS,
    presets=reptile_budgets(twenty_way=False),
    presets_by_shape=lambda episode: reptile_budgets(twenty_way=episode.ways >= 20),
    transductive=False,
    episode_values=reptile_episode_values,
)

CARDS = (MAML, FOMAML, ANIL, META_SGD, MAMLPP, REPTILE)
