"""The ``tradingd attribution``  command (being written; registers nothing yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Add ``attribution`` to ``app``."""


__all__ = ["register"]
