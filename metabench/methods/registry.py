"""The method registry: every method's card by name, built in or from an installed package, without torch.

A third-party package adds methods through the entry-point group `metabench.methods`; each entry names
a MethodCard (in a module that does not import torch, so that listing methods stays instant):

    [project.entry-points."metabench.methods"]
    my-method = "my_package.card:MY_METHOD"  # MethodCard(..., implementation="my_package.method:MyMethod")
"""

from __future__ import annotations

import importlib.metadata
import sys

from metabench.config import METHOD_PLUGIN_GROUP
from metabench.methods.builtin import BUILTIN_CARDS
from metabench.methods.card import FAMILY_ORDER, MethodCard

_CARDS: dict[str, MethodCard] = {}


def _load_cards() -> dict[str, MethodCard]:
    """The built-in cards, then the installed plugins' (a broken plugin is named and skipped)."""
    if _CARDS:
        return _CARDS
    cards = {card.name: card for card in BUILTIN_CARDS}
    for entry in importlib.metadata.entry_points(group=METHOD_PLUGIN_GROUP):
        try:
            card = entry.load()
            if not isinstance(card, MethodCard):
                raise ValueError(f"it names a {type(card).__name__}, not a MethodCard")
            if card.name in cards:
                raise ValueError(f"a method called {card.name!r} exists already")
            cards[card.name] = card
        except Exception as exc:  # one broken package must not take every method down with it
            reason = " ".join(str(exc).split()) or type(exc).__name__
            print(
                f"warning: method plugin {entry.name!r} ({entry.value}) was not loaded: {reason}; "
                f"fix or uninstall the package that provides it",
                file=sys.stderr,
            )
    _CARDS.update(cards)
    return _CARDS


def get_card(name: str) -> MethodCard:
    """The card of the method called `name`; ValueError listing the known names otherwise."""
    cards = _load_cards()
    try:
        return cards[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(cards))}") from None


def all_cards() -> list[MethodCard]:
    """Every method's card, ordered by family then name."""
    return sorted(_load_cards().values(), key=lambda card: (FAMILY_ORDER.index(card.family), card.name))
