"""selfheal: an autonomous self-healing controller for cloud-native systems.

The loop runs detect -> diagnose -> decide -> dispatch -> execute -> verify -> (roll back)
-> record. The packages below this one each own one stage; `docs/architecture.md` draws the
map and the layers that import-linter enforces.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
