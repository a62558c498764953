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
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backtest.fill_model import FillConfig
from backtest.replay import ReplayConfig
from core.time import parse_timeframe
from learning.pipeline import SignalConfig
from risk.config import RiskConfig
from state.config import StoreConfig
from strategies.registry import STRATEGIES, StrategyConfigError, build_strategy


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
        missing: list[str] = []
        for pattern in self.data.paths:
            full = Path(pattern) if Path(pattern).is_absolute() else self.base_dir / pattern
            matches = sorted(Path(p) for p in glob.glob(str(full)))
            if not matches:
                missing.append(f"[data] paths: {pattern!r} matches no file (looked in {full.parent})")
            files.extend(matches)
        if missing:
            raise ConfigError("\n  ".join(missing))
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


def _allowed_keys(loc: list[str]) -> list[str] | None:
    """Keys of the section at ``loc`` (``[]`` = the top level), or ``None`` if it is not a section."""
    model: Any = AppConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = field.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    return [name for name in model.model_fields if not (model is AppConfig and name == "base_dir")]


def _describe(err: Mapping[str, Any]) -> str:
    loc = [str(p) for p in err["loc"]]
    value = err.get("input")
    if isinstance(value, (datetime, date, time)):
        value = value.isoformat()
    if err["type"] == "extra_forbidden":  # a typo: say which keys exist
        allowed = ", ".join(_allowed_keys(loc[:-1]) or [])
        if len(loc) == 1:
            return f"[{loc[0]}]: unknown section; allowed sections: {allowed}"
        return f"[{'.'.join(loc[:-1])}] {loc[-1]} = {value!r}: unknown key; allowed keys: {allowed}"
    section, key = (f"[{'.'.join(loc[:-1])}] " if len(loc) > 1 else ""), loc[-1] if loc else "?"
    shown = "" if err["type"] == "missing" else f" = {value!r}"
    return f"{section}{key}{shown}: {err['msg']}"


def _strategy_problem(raw: Any) -> str | None:
    """Check the ``[strategy]`` section on its own, so its problems are listed with all others."""
    try:
        section = StrategySection.model_validate(raw if raw is not None else {})
    except ValidationError:
        return None  # already reported by the validation of the whole file
    try:
        build_strategy(section.name, section.params)
    except StrategyConfigError as exc:
        message = f"[strategy] {exc}"
        cls = STRATEGIES.get(section.name)
        if cls is not None and set(section.params) - set(cls.Params.model_fields):
            message += f"; parameters of {section.name!r}: {', '.join(cls.Params.model_fields)}"
        return message
    return None


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
    if overrides:
        origin = f"{origin} + command-line options"
    problems: list[str] = []
    config: AppConfig | None = None
    try:
        config = AppConfig.model_validate({**raw, "base_dir": base})
    except ValidationError as exc:
        problems.extend(_describe(err) for err in exc.errors())
    strategy_problem = _strategy_problem(raw.get("strategy"))
    if strategy_problem:
        problems.append(strategy_problem)
    if problems or config is None:
        listed = "\n  ".join(problems)
        raise ConfigError(f"{origin}: invalid configuration:\n  {listed}")
    # keep the validated (typed) parameters, so "10" from --param and 10 from the file hash alike
    params = build_strategy(config.strategy.name, config.strategy.params).params.model_dump()
    return config.model_copy(update={"strategy": StrategySection(name=config.strategy.name, params=params)})
