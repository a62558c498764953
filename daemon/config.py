"""Load and validate ``config.toml``. Only this module reads the file; every component receives its
own frozen ``<Component>Config`` section, never the whole configuration.

An invalid value fails before anything runs, with the file, the key, the value and what is allowed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backtest.fill_model import FillConfig
from backtest.replay import ReplayConfig
from core.time import parse_timeframe
from learning.pipeline import SignalConfig
from risk.config import RiskConfig
from state.config import StoreConfig
from strategies.registry import StrategyConfigError, build_strategy


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem as ``[section] key = value: rule``."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StrategySection(_Section):
    name: str = "sma_cross"
    params: dict[str, Any] = Field(default_factory=dict)


class DataSection(_Section):
    paths: list[str] = Field(default_factory=lambda: ["data/us_equity_1hour_adjusted/*.csv.gz"],
                             description="files or glob patterns, relative to the config file")
    timeframe: str | None = Field(None, description="e.g. '1h'; inferred from the data when absent")
    start: datetime | None = Field(None, description="first bar start (inclusive), with timezone")
    end: datetime | None = Field(None, description="last bar start (exclusive), with timezone")

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str | None) -> str | None:
        if value is not None:
            parse_timeframe(value)
        return value

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a timezone, e.g. 2020-01-01T00:00:00Z")
        return value


class LoggingSection(_Section):
    format: Literal["console", "json"] = "console"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class OutputSection(_Section):
    dir: str = Field("runs/latest", description="output folder of a replay, relative to the working directory")
    report: bool = True


class AppConfig(_Section):
    """The whole ``config.toml``."""

    strategy: StrategySection = StrategySection()
    data: DataSection = DataSection()
    replay: ReplayConfig = ReplayConfig()
    fill: FillConfig = FillConfig()
    risk: RiskConfig = RiskConfig()
    signals: SignalConfig = SignalConfig()
    state: StoreConfig = StoreConfig()
    logging: LoggingSection = LoggingSection()
    output: OutputSection = OutputSection()
    base_dir: Path = Field(Path("."), exclude=True, description="folder of the config file (for relative paths)")

    def data_files(self) -> list[Path]:
        """Expand ``data.paths`` (globs allowed) relative to the config file, sorted within a pattern.

        Raises
        ------
        ConfigError
            If a path or pattern matches no file.
        """
        files: list[Path] = []
        for pattern in self.data.paths:
            full = Path(pattern) if Path(pattern).is_absolute() else self.base_dir / pattern
            matches = sorted(Path(p) for p in glob.glob(str(full)))
            if not matches:
                raise ConfigError(f"[data] paths: {pattern!r} matches no file (looked in {full.parent})")
            files.extend(matches)
        return files

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the resolved configuration (identifies a run's setup)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[leaf] = value


def _describe(err: Mapping[str, Any]) -> str:
    loc = [str(p) for p in err["loc"]]
    section, key = (f"[{'.'.join(loc[:-1])}] " if len(loc) > 1 else ""), loc[-1] if loc else "?"
    shown = "" if err["type"] == "missing" else f" = {err.get('input')!r}"
    return f"{section}{key}{shown}: {err['msg']}"


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """Read ``path`` (TOML; ``None`` = built-in defaults), apply dotted ``overrides`` such as
    ``{"risk.max_drawdown": 0.1, "strategy.params": {...}}`` and validate everything, including the
    strategy's parameters.

    Raises
    ------
    ConfigError
        If the file is missing or not valid TOML, or any value is invalid (all problems listed).
    """
    raw: dict[str, Any] = {}
    base = Path(".")
    origin = "defaults"
    if path is not None:
        path = Path(path)
        origin = str(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        base = path.resolve().parent
    for dotted, value in (overrides or {}).items():
        _set_path(raw, dotted, value)
    try:
        config = AppConfig.model_validate({**raw, "base_dir": base})
    except ValidationError as exc:
        problems = "\n  ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"{origin}: invalid configuration:\n  {problems}") from None
    try:
        build_strategy(config.strategy.name, config.strategy.params)
    except StrategyConfigError as exc:
        raise ConfigError(f"{origin}: [strategy] {exc}") from None
    return config
