"""The built-in methods' cards, family by family (importing them needs no torch)."""

from metabench.methods.baselines import cards as baselines
from metabench.methods.compare import cards as compare
from metabench.methods.init import cards as init
from metabench.methods.other import cards as other

BUILTIN_CARDS = (*init.CARDS, *compare.CARDS, *other.CARDS, *baselines.CARDS)
