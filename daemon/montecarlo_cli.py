"""The ``tradingd montecarlo``  command (being written; registers nothing yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Add ``montecarlo`` to ``app``."""


__all__ = ["register"]
