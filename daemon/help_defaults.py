"""How ``tradingd <command> --help`` looks: each option's default is the value ``config.toml``
sets (``default: [fill] slippage_bps = 2.0 from config.toml``) or, where it sets none, the
built-in one, and no Python type noise (``<bool>``, ``<list[str]>``) is shown.

Only the TOML file is read, nothing is validated or imported, so ``--help`` stays fast;
:data:`BUILTIN` mirrors the defaults of :mod:`daemon.config` (a test keeps them equal). Commands
opt in with ``cls=HelpCommand`` and name their options' settings with :func:`with_defaults`.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape
from typer import _click as click  # typer vendors click: its commands take these types
from typer.core import TyperCommand, TyperGroup, TyperOption

__all__ = ["BUILTIN", "DEFAULT_CONFIG", "HelpCommand", "HelpGroup", "config_argument", "default_text", "read_table",
           "with_defaults"]

DEFAULT_CONFIG = Path("config.toml")
"""The configuration file used when ``--config`` is not given (if it exists)."""

BUILTIN: dict[str, Any] = {
    "strategy.name": "sma_cross",
    "data.paths": ["data/us_equity_1hour_adjusted/*.csv.gz"],
    "data.timeframe": None,
    "data.start": None,
    "data.end": None,
    "replay.starting_cash": 100_000.0,
    "fill.slippage_bps": 1.0,
    "fill.slippage_volatility": 0.0,
    "fill.commission_per_share": 0.0,
    "fill.commission_minimum": 0.0,
    "fill.commission_bps": 0.0,
    "fill.participation_cap": None,
    "signals.learner.seed": 42,
    "state.database_url": "sqlite:///tradingd.db",
    "output.dir": "runs/latest",
    "output.report": True,
    "output.benchmark": "auto",
}
"""Built-in values of the settings that command-line options override (dotted keys)."""

_UNSET = {
    "data.timeframe": "inferred from the data (the most frequent bar spacing)",
    "data.start": "from the first bar",
    "data.end": "through the last bar",
    "fill.participation_cap": "no cap",
}


def config_argument(args: Sequence[str]) -> Path | None:
    """Return the file named by ``-c``/``--config`` in ``args`` (as typed), or None.

    Examples
    --------
    >>> config_argument(["replay", "-c", "prod.toml", "--help"])
    PosixPath('prod.toml')
    >>> config_argument(["--config=x.toml"]), config_argument(["--help"])
    (PosixPath('x.toml'), None)
    """
    for index, arg in enumerate(args):
        if arg in ("-c", "--config") and index + 1 < len(args):
            return Path(args[index + 1])
        if arg.startswith("--config="):
            return Path(arg.partition("=")[2])
        if arg.startswith("-c") and len(arg) > 2 and not arg.startswith("--"):
            return Path(arg[2:])
    return None


def read_table(path: Path | None) -> tuple[dict[str, Any], str | None]:
    """Return the TOML table of ``path`` (or of ./config.toml) and its name for messages; an empty
    table and None when there is no readable file (the help must render anyway)."""
    chosen = path if path is not None else DEFAULT_CONFIG
    try:
        return tomllib.loads(chosen.read_text()), str(chosen)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}, None


def _lookup(table: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = table
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _toml(value: Any) -> str:
    """``value`` written as in TOML (``true``, ``"text"``, ``[1, 2]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _key(dotted: str) -> str:
    section, _, key = dotted.rpartition(".")
    return f"[{section}] {key}"


def default_text(dotted: str, table: Mapping[str, Any], source: str | None,
                 environ: Mapping[str, str] | None = None) -> str:
    """Describe the default of setting ``dotted`` for an option's help.

    Parameters
    ----------
    dotted
        The setting, e.g. ``"fill.slippage_bps"``; ``"strategy.params"`` lists the configured
        parameters.
    table, source
        The configuration file's TOML table and its name (None: no file).
    environ
        Where ``TRADINGD_DATABASE_URL`` is looked up (default ``os.environ``).

    Returns
    -------
    str
        E.g. ``'[fill] slippage_bps = 2.0 from config.toml'`` or
        ``'[fill] slippage_bps = 1.0 (built-in)'``. A database URL holding credentials is never
        shown.

    Examples
    --------
    >>> default_text("fill.slippage_bps", {"fill": {"slippage_bps": 2.0}}, "config.toml")
    '[fill] slippage_bps = 2.0 from config.toml'
    >>> default_text("data.timeframe", {}, None)
    '[data] timeframe: inferred from the data (the most frequent bar spacing)'
    """
    environ = os.environ if environ is None else environ
    if dotted == "state.database_url" and environ.get("TRADINGD_DATABASE_URL", "").strip():
        return "TRADINGD_DATABASE_URL from the environment"
    found, value = _lookup(table, dotted)
    if dotted == "strategy.params":
        if found and isinstance(value, Mapping) and value:
            listed = ", ".join(f"{k} = {_toml(v)}" for k, v in value.items())
            return f"[strategy.params] {listed} from {source}"
        return "the strategy's own defaults (see `tradingd strategies`)"
    origin = f"from {source}" if found else "(built-in)"
    if not found:
        value = BUILTIN.get(dotted)
    if value is None:
        return f"{_key(dotted)}: {_UNSET.get(dotted, 'not set')}" + (f" {origin}" if found else "")
    if dotted == "state.database_url" and "@" in str(value):
        return f"{_key(dotted)} {origin} (credentials not shown)"
    return f"{_key(dotted)} = {_toml(value)} {origin}"


# --- the command classes -------------------------------------------------------------------

_ARGS = "tradingd.args"
_DEFAULTS = "__tradingd_defaults__"  # on a command's function: option name -> setting whose default it shows
_BASE_HELP = "tradingd_help"


def _default_of(command: click.Command, param: click.Parameter, ctx: click.Context) -> str | None:
    """The default text of ``param`` for this invocation's config file, or None."""
    callback = getattr(command.callback, "__wrapped__", command.callback)
    setting = getattr(callback, _DEFAULTS, {}).get(param.name)
    if setting is None:
        return None
    if callable(setting):
        return str(setting())
    table, source = read_table(config_argument(ctx.meta.get(_ARGS, [])))
    return default_text(setting, table, source)


class HelpCommand(TyperCommand):
    """A command whose help shows each option's configured default and no type noise."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGS] = list(args)  # --help is eager: --config is not parsed yet, so keep the raw words
        return super().parse_args(ctx, args)

    def get_help_option(self, ctx: click.Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for param in self.params:
            base = getattr(param, _BASE_HELP, None)
            if base is None:
                base = getattr(param, "help", None) or ""
                setattr(param, _BASE_HELP, base)
            text = _default_of(self, param, ctx)
            if text is not None:
                setattr(param, "help", f"{base} [dim]\\[default: {escape(text)}][/]")
            if param.param_type_name == "argument":  # typer shows its Python type (<list[Path]>): noise
                setattr(param, "display_type_rich", _no_type)
            elif param.metavar is None:  # a flag shows nothing; a value its name, e.g. --limit LIMIT
                param.metavar = "" if getattr(param, "is_flag", False) else (param.name or "value").upper()
        super().format_help(ctx, formatter)


def _no_type(ctx: click.Context) -> str:
    return ""


class HelpGroup(TyperGroup):
    """A group whose help shows no type noise."""

    def get_help_option(self, ctx: click.Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option




def with_defaults(**settings: str | Callable[[], str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Name, per option of a command, the setting (dotted key such as ``"fill.slippage_bps"``)
    whose default its help shows, or a function returning the text. Apply below ``@app.command``
    (with ``cls=HelpCommand``)."""
    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(function, _DEFAULTS, settings)
        return function
    return mark
