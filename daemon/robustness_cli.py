"""The ``tradingd robustness``  command (being written; registers nothing yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Add ``robustness`` to ``app``."""


__all__ = ["register"]
