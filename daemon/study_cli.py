"""What ``tradingd optimize`` and ``tradingd walkforward`` share: the options that choose the bars,
the strategy, the base configuration and the database, and loading the base configuration with
the search space (a space of another strategy than the file's replaces the file's parameters).

Import-light like every CLI module: typer at module level, the configuration and the search
space inside :func:`load_study_setup`.
"""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from daemon.cli_common import config_with_path

__all__ = ["BaseConfigOpt", "CacheOpt", "DataOpt", "EndOpt", "FilesArg", "JobsOpt", "StartOpt", "StrategyOpt",
           "StudyDbOpt", "load_study_setup"]

FilesArg = Annotated[Optional[list[Path]], typer.Argument(
    metavar="FILE|DIR", show_default=False, help="Bar files or folders; same as --data.")]
StrategyOpt = Annotated[Optional[str], typer.Option(
    "--strategy", "-s", metavar="NAME", show_default=False,
    help="Strategy name or package.module:Class; default the space file's strategy, else \\[strategy] name.")]
JobsOpt = Annotated[int, typer.Option(metavar="N", help="Replays at a time (worker processes).")]
BaseConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", "-c", metavar="FILE", show_default=False,
    help="Base configuration (TOML); its data, risk, fill and signal settings are every trial's start.")]
StudyDbOpt = Annotated[Optional[str], typer.Option(
    "--db", metavar="URL", show_default=False,
    help="State database holding the studies: sqlite:///path.db or postgresql+psycopg://user@host/db.")]
DataOpt = Annotated[Optional[list[Path]], typer.Option(
    "--data", "-d", metavar="FILE|DIR", show_default=False, help="Bar file or folder; repeatable.")]
StartOpt = Annotated[Optional[str], typer.Option(
    metavar="TIME", show_default=False, help="First bar start, ISO-8601 with timezone (inclusive).")]
EndOpt = Annotated[Optional[str], typer.Option(
    metavar="TIME", show_default=False, help="Last bar start, ISO-8601 with timezone (exclusive).")]
CacheOpt = Annotated[bool, typer.Option(
    "--cache/--no-cache", help="Reuse metrics of parameter sets already replayed on the same bars.")]


def load_study_setup(config: Path | None, files: list[Path] | None, data: list[Path] | None, start: str | None,
                     end: str | None, db: str | None, space: Path | None,
                     strategy: str | None) -> tuple[Path | None, Any, Any]:
    """Load the base configuration with the command line's bars, window and database, then the
    search space (``space``, default ``spaces/<strategy>.toml``).

    Returns
    -------
    (Path or None, daemon.config.AppConfig, research.search_space.SearchSpace)
        The configuration file read (None: built-in defaults), the configuration, the space. When
        the space is of another strategy than the file's, the configuration is loaded again with
        that strategy and no parameters of the file's.

    Raises
    ------
    daemon.config.ConfigError
        For an invalid file or value (the message names the option that set it).
    research.search_space.SpaceError
        For an invalid or missing space file.
    """
    from research.search_space import load_space

    paths = [str(Path(p).resolve()) for p in [*(data or []), *(files or [])]]
    overrides: dict[str, Any] = {}
    options: dict[str, str] = {}
    for key, value, option in (("data.start", start, "--start"), ("data.end", end, "--end"),
                               ("state.database_url", db, "--db"), ("data.paths", paths or None, "--data")):
        if value is not None:
            overrides[key], options[key] = value, option
    config_path, cfg = config_with_path(config, overrides, options)
    space_path = space if space is not None else Path("spaces") / f"{strategy or cfg.strategy.name}.toml"
    study_space = load_space(space_path, strategy=strategy, default_strategy=cfg.strategy.name)
    if study_space.strategy != cfg.strategy.name:  # another strategy: the base file's params are not its own
        overrides.update({"strategy.name": study_space.strategy, "strategy.params": {}})
        options["strategy.name"] = "--strategy"
        config_path, cfg = config_with_path(config, overrides, options)
    return config_path, cfg, study_space
