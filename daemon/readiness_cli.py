"""The ``tradingd readiness``  command (being written; registers nothing yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Add ``readiness`` to ``app``."""


__all__ = ["register"]
