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


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr (plain text, not markup)."""
    err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def config_with_path(config: Path | None, overrides: dict[str, Any],
                     options: dict[str, str]) -> tuple[Path | None, Any]:
    """Like :func:`load_app_config`, with ``options`` (dotted key -> the option that set it, for
    messages) and the path actually read (None: built-in defaults).

    Raises
    ------
    daemon.config.ConfigError
        If the file or a value is invalid.
    """
    from daemon.config import load_config

    path = config if config is not None else (Path("config.toml") if Path("config.toml").exists() else None)
    return path, load_config(path, overrides, options=options)


def out_problem(out_dir: Path) -> str | None:
    """Why ``--out out_dir`` cannot be written (a file, not writable, no creatable parent), or None."""
    import os

    if out_dir.exists():
        if not out_dir.is_dir():
            return f"--out {out_dir}: exists and is a file, not a folder"
        return None if os.access(out_dir, os.W_OK) else f"--out {out_dir}: folder is not writable"
    parent = out_dir.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        return f"--out {out_dir}: cannot create it under {parent}"
    return None


class StopOnSignals:
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt as Ctrl-C does (a study then
    records its running trials as interrupted)."""

    def __enter__(self) -> StopOnSignals:
        import signal

        self.previous = {sig: signal.signal(sig, self._raise) for sig in (signal.SIGTERM, signal.SIGHUP)}
        return self

    def __exit__(self, *exc_info: object) -> None:
        import signal

        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    @staticmethod
    def _raise(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt
