"""Runs on the twin: the fault harness and its tools."""

__all__: list[str] = []
