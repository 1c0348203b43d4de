"""The method registry: a dict and a decorator (after jakesnell/prototypical-networks), plus plugins.

A third-party package adds methods through the entry-point group `metabench.methods`; each entry
names a module (whose import registers its methods with `@register`) or a Method subclass:

    [project.entry-points."metabench.methods"]
    my-method = "my_package.my_method:MyMethod"
"""

from __future__ import annotations

import importlib.metadata
import inspect
import sys

from metabench.config import METHOD_PLUGIN_GROUP
from metabench.methods.base import Method

_REGISTRY: dict[str, type[Method]] = {}
_loaded = False


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a Method available by its name."""
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_methods() -> None:
    """The built-in methods (importing their package registers them), then the installed plugins."""
    global _loaded
    if _loaded:
        return
    import metabench.methods.builtin  # noqa: F401

    _loaded = True
    for entry in importlib.metadata.entry_points(group=METHOD_PLUGIN_GROUP):
        try:
            loaded = entry.load()
            if inspect.isclass(loaded) and issubclass(loaded, Method) and loaded not in _REGISTRY.values():
                register(loaded)
        except Exception as exc:  # one broken package must not take every method down with it
            reason = " ".join(str(exc).split()) or type(exc).__name__
            print(
                f"warning: method plugin {entry.name!r} ({entry.value}) was not loaded: {reason}; "
                f"fix or uninstall the package that provides it",
                file=sys.stderr,
            )


def get_method(name: str) -> type[Method]:
    """The method class called `name`; ValueError listing the known names otherwise."""
    _load_methods()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(_REGISTRY))}") from None


def all_methods() -> list[type[Method]]:
    """Every registered method, ordered by family then name."""
    _load_methods()
    order = {"A": 0, "B": 1, "C": 2, "baseline": 3}
    return sorted(_REGISTRY.values(), key=lambda m: (order.get(m.family, 4), m.name))
