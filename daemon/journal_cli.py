"""The ``tradingd journal``  command (being written; registers nothing yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Add ``journal`` to ``app``."""


__all__ = ["register"]
