"""Method cards: one declaration of each config key (type, rule, default, help) read by every consumer."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from metabench.cli.app import app
from metabench.config import EpisodeSpec
from metabench.methods.card import Field, MethodCard, Preset
from metabench.methods.registry import all_cards, get_card

FIVE_WAY = EpisodeSpec(5, 1, 15)
PRESETS = {"smoke": Preset(1, 4), "quick": Preset(2, 8, {"layers": [32, 32]}), "paper": Preset(3, 8)}


def card(*fields: Field) -> MethodCard:
    return MethodCard(
        name="toy",
        family="C",
        paper="a test",
        summary="a card built by the tests",
        implementation="nowhere:Toy",
        fields=fields,
        presets=PRESETS,
    )


TOY = card(
    Field("layers", "list[int]", [64, 64, 64], "hidden units per layer", positive=True),
    Field("rates", "list[float]", [0.1], "a step size per inner step", positive=True),
    Field("schedule", "json", {"kind": "cosine", "warmup": [0, 10]}, "any JSON value"),
    Field("dropout", "float", 0.0, "drop probability", minimum=0, maximum=1),
    Field("cell", "str", "lstm", "the recurrent cell", choices=("lstm", "gru")),
    Field("bias", "bool", True, "learn a bias"),
)


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("layers", "[128, 64]", [128, 64]),
        ("rates", "[0.4, 1]", [0.4, 1.0]),  # an int is a float
        ("schedule", '{"kind": "step", "every": [100, 200]}', {"kind": "step", "every": [100, 200]}),
        ("schedule", "null", None),
        ("dropout", "0.5", 0.5),
        ("cell", "gru", "gru"),
        ("bias", "no", False),
    ],
)
def test_set_strings_are_parsed_by_the_declared_type(key: str, raw: str, value: object) -> None:
    config = TOY.make_config("paper", {key: raw}, FIVE_WAY)
    assert config[key] == value and getattr(config, key) == value


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("layers", "128", "--set layers='128': expected a JSON list, e.g. [64,64]"),
        ("layers", "[128, 0]", "--set layers='[128, 0]': layers must be positive"),
        ("layers", "[1.5]", "expected a value of type int"),
        ("layers", "[true]", "expected a value of type int"),
        ("layers", "[64,", "--set layers='[64,': expected JSON of type list[int], e.g. [64,64]"),
        ("rates", "[NaN]", "expected a finite float"),
        ("schedule", "[" * 5000, "expected JSON of type json"),
        ("schedule", "[" * 40 + "]" * 40, "nested too deeply"),
        ("dropout", "1.5", "--set dropout='1.5': dropout must be at most 1"),
        ("dropout", "-0.1", "dropout must be at least 0"),
        ("cell", "rnn", "--set cell='rnn': must be one of lstm, gru"),
        ("bias", "maybe", "--set bias='maybe': expected true or false"),
        ("depth", "3", "unknown key 'depth' for method 'toy'; valid keys: bias, cell, dropout"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(key: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        TOY.make_config("paper", {key: raw}, FIVE_WAY)
    assert "\n" not in str(error.value)


def test_presets_and_defaults_are_checked_by_the_same_rules() -> None:
    assert TOY.make_config("quick", {}, FIVE_WAY).layers == [32, 32]
    with pytest.raises(ValueError, match="layers must be positive"):
        card(Field("layers", "list[int]", [0], "units", positive=True))
    broken = MethodCard(**{**vars(TOY), "presets": {**PRESETS, "quick": Preset(2, 8, {"dropout": 2.0})}})
    with pytest.raises(ValueError, match="dropout must be at most 1"):
        broken.make_config("quick", {}, FIVE_WAY)
    config = TOY.make_config("paper", {}, FIVE_WAY)
    with pytest.raises(AttributeError, match="frozen"):
        config.dropout = 0.3  # type: ignore[misc]
    with pytest.raises(AttributeError, match="no config key 'droput'"):
        _ = config.droput


def test_every_trained_method_declares_its_model_selection() -> None:
    assert TOY.field("model_selection").choices == ("last", "best-validation")
    assert TOY.make_config("paper", {"model_selection": "best-validation"}, FIVE_WAY).model_selection == (
        "best-validation"
    )
    assert all(c.field("model_selection") for c in all_cards() if c.needs_training)
    with pytest.raises(ValueError, match="unknown key 'model_selection'"):
        get_card("pixels-nn").field("model_selection")


def test_the_cli_lists_what_the_cards_declare() -> None:
    """`methods --json`, `methods NAME` and `run --set` read the one declaration."""
    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["methods", "--json"]).stdout)
    assert [row["name"] for row in listed] == [c.name for c in all_cards()]
    maml = next(row for row in listed if row["name"] == "maml")
    assert maml["config"]["strategy"] == {
        "type": "str",
        "default": "auto",
        "help": get_card("maml").field("strategy").help,
        "rule": "one of auto, vectorized, loop",
        "choices": ["auto", "vectorized", "loop"],
    }
    assert maml["config"]["inner_lr"]["rule"] == "float > 0"
    assert maml["presets_20_way"]["quick"]["meta_steps"] == 600  # the 20-way budget of the card
    shown = runner.invoke(app, ["methods", "maml"])
    assert (
        shown.exit_code == 0
        and "test_inner_steps" in shown.stdout
        and "one of last, best-validation" in (shown.stdout)
    )
    unknown = runner.invoke(app, ["methods", "mamll"])
    assert unknown.exit_code == 1 and "unknown method 'mamll'" in unknown.output
