"""What every CLI module shares: the two consoles, the error exit and the config lookup.

Kept import-light (typer and rich only) so ``tradingd --help`` stays fast; the configuration
module is imported when a command loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err = Console(stderr=True)

__all__ = ["console", "err", "fail", "load_app_config"]


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with status 2 (bad input or configuration).

    The message is plain text (``[risk] max_drawdown = ...``), not rich markup, and is never
    hard-wrapped (paths stay whole).
    """
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def load_app_config(config: Path | None, overrides: dict[str, Any]) -> Any:
    """Load ``config`` (default ``./config.toml`` when present, else the built-in defaults) with the
    command line's ``overrides`` (dotted keys; ``None`` values are options not given).

    Raises
    ------
    daemon.config.ConfigError
        If the file or a value is invalid.
    """
    from daemon.config import load_config

    path = config if config is not None else (Path("config.toml") if Path("config.toml").exists() else None)
    return load_config(path, {k: v for k, v in overrides.items() if v is not None})
