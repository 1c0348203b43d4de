"""A method's implementation, imported from the `implementation` its card names (this imports torch)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from metabench.methods.base import Method, TrainingContext
from metabench.methods.registry import get_card


def get_method(name: str) -> type[Method]:
    """The Method subclass of the method called `name`; ValueError when it is unknown or cannot load."""
    card = get_card(name)
    module_name, _, class_name = card.implementation.partition(":")
    try:
        implementation = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"method {name!r}: cannot load {card.implementation} ({exc})") from None
    if not (isinstance(implementation, type) and issubclass(implementation, Method)):
        raise ValueError(f"method {name!r}: {card.implementation} is not a Method subclass")
    if implementation.card is not card:
        raise ValueError(f"method {name!r}: {card.implementation}.card is another method's card")
    return implementation


def build_method(
    name: str, context: TrainingContext, preset: str = "paper", overrides: Mapping[str, str] | None = None
) -> Method:
    """`name` configured by `preset` and the `--set`-style `overrides`, built for `context`.

    Its initial weights come from torch's global generator: seed it first for a reproducible build.
    """
    method_class = get_method(name)
    return method_class(method_class.card.make_config(preset, overrides or {}, context.episode), context)
