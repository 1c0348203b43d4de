"""Omniglot: get and verify the zips, the 28x28 cache, the protocols' splits, the episode sampler.

Names are imported lazily so that `metabench data info` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metabench.data.cache import LakeRuns, OmniglotCache, load_cache
    from metabench.data.download import download_omniglot
    from metabench.data.episodes import EVAL_SEED, EpisodeSampler, OfficialRunsSampler, evaluation_episodes
    from metabench.data.install import import_data, info, verify
    from metabench.data.protocols import PROTOCOLS, ProtocolData, load_protocol

_EXPORTS = {
    "EVAL_SEED": "episodes",
    "EpisodeSampler": "episodes",
    "OfficialRunsSampler": "episodes",
    "evaluation_episodes": "episodes",
    "PROTOCOLS": "protocols",
    "ProtocolData": "protocols",
    "load_protocol": "protocols",
    "LakeRuns": "cache",
    "OmniglotCache": "cache",
    "load_cache": "cache",
    "download_omniglot": "download",
    "import_data": "install",
    "info": "install",
    "verify": "install",
}
__all__ = [  # noqa: F822 (resolved by __getattr__)
    "EVAL_SEED",
    "EpisodeSampler",
    "LakeRuns",
    "OfficialRunsSampler",
    "OmniglotCache",
    "PROTOCOLS",
    "ProtocolData",
    "download_omniglot",
    "evaluation_episodes",
    "import_data",
    "info",
    "load_cache",
    "load_protocol",
    "verify",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"metabench.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'metabench.data' has no attribute {name!r}")
