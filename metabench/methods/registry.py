"""The method registry: a dict and a decorator (after jakesnell/prototypical-networks)."""

from __future__ import annotations

from metabench.methods.base import Method

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a Method available by its name."""
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin_methods() -> None:
    # Importing the package registers every built-in method through its decorator.
    import metabench.methods.builtin  # noqa: F401


def get_method(name: str) -> type[Method]:
    """The method class called `name`; ValueError listing the known names otherwise."""
    _load_builtin_methods()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(_REGISTRY))}") from None


def all_methods() -> list[type[Method]]:
    """Every registered method, ordered by family then name."""
    _load_builtin_methods()
    order = {"A": 0, "B": 1, "C": 2, "baseline": 3}
    return sorted(_REGISTRY.values(), key=lambda m: (order[m.family], m.name))
