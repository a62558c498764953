"""The ``tradingd sizing``  command (being written; registers nothing yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Add ``sizing`` to ``app``."""


__all__ = ["register"]
