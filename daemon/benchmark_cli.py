"""The ``tradingd benchmark``  command (being written; registers nothing yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Add ``benchmark`` to ``app``."""


__all__ = ["register"]
