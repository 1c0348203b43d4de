"""The cards of family A, learning to initialize: MAML and its kin (read without torch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from metabench.config import EpisodeSpec
from metabench.methods.card import Field, MethodCard, Preset

MAML_STRATEGIES = ("auto", "vectorized", "loop")

MAML_FIELDS = (
    Field("inner_steps", "int", 1, "gradient steps on the support set during meta-training", positive=True),
    Field("inner_lr", "float", 0.4, "step size of the inner gradient steps", positive=True),
    Field("test_inner_steps", "int", 3, "gradient steps on the support set at evaluation", positive=True),
    Field("meta_batch", "int", 32, "tasks per meta-update", positive=True),
    Field("meta_lr", "float", 1e-3, "Adam's learning rate for the meta-update", positive=True),
    # Finn's code draws as many query examples per class as there are shots (see maml_episode_values).
    Field("train_queries", "int", 1, "query examples per class in meta-training tasks", positive=True),
    Field("hidden", "int", 64, "channels of each Conv-4 layer", positive=True),
    Field(
        "strategy",
        "str",
        "auto",
        "vectorized (torch.func.vmap over tasks), loop (per-task reference) or auto (measured per "
        "device and task shape)",
        choices=MAML_STRATEGIES,
    ),
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
    Field(
        "strategy",
        "str",
        "auto",
        "vectorized (torch.func.vmap over tasks), loop (per-task reference) or auto",
        choices=MAML_STRATEGIES,
    ),
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
)

CARDS = (MAML, FOMAML, ANIL, META_SGD, MAMLPP)
