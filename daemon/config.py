"""Load and validate ``config.toml``. Only this module reads the file; every component receives its
own frozen ``<Component>Config`` section, never the whole configuration.

An invalid value fails before anything runs, with the file, the key, the value and what is allowed;
a value given on the command line is named by its option (``--slippage-bps -1.0``). Values of
unknown keys are never echoed and database URLs only with their password masked.

Secrets come from the environment: ``TRADINGD_DATABASE_URL`` replaces ``[state] database_url``
(``--db`` replaces both) and ``TRADINGD_DATABASE_PASSWORD`` sets the password of whichever URL
applies. A relative SQLite path in ``config.toml`` (or the built-in ``tradingd.db``) is resolved
against the config file's folder, like ``[data] paths``; one from ``--db`` or the environment
against the working directory.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backtest.fill_model import FillConfig
from backtest.spec import ReplayConfig, RunSpec
from daemon.adapters.alpaca.config import AlpacaConfig
from daemon.adapters.mqtt_config import MqttConfig
from daemon.live.config import LiveConfig
from core.time import parse_timeframe
from learning.pipeline import SignalConfig
from risk.config import RiskConfig
from state.config import StoreConfig, mask_url, resolve_sqlite, url_problem, with_password
from strategies.registry import StrategyConfigError, build_strategy

ENV_DATABASE_URL = "TRADINGD_DATABASE_URL"
"""Environment variable that replaces ``[state] database_url`` (``--db`` still wins)."""
ENV_DATABASE_PASSWORD = "TRADINGD_DATABASE_PASSWORD"
"""Environment variable holding the database password; set into whichever URL applies."""
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet")
"""Files a folder given in ``[data] paths`` / ``--data`` contributes."""
_FIRST_NS, _LAST_NS = -(2**63) + 1, 2**63 - 1  # the int64-ns range every timestamp must fit


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem as ``[section] key = value: rule``."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StrategySection(_Section):
    name: str = Field("sma_cross", description="built-in name, entry-point name (group tradingd.strategies) "
                                               "or import path module:Class (see strategies.registry)")
    params: dict[str, Any] = Field(default_factory=dict, description="the strategy's parameters by name")


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
            from backtest.sources import timeframe_problem  # pandas: only when a timeframe is set

            problem = timeframe_problem(parse_timeframe(value))
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        if value.tzinfo is None:
            raise ValueError("needs a timezone, e.g. 2020-01-01T00:00:00Z")
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        if not _FIRST_NS <= (value - epoch) // timedelta(microseconds=1) * 1000 <= _LAST_NS:
            raise ValueError("outside 1677-09-21 .. 2262-04-11, the range tradingd can represent (int64 ns)")
        return value


class LoggingSection(_Section):
    format: Literal["console", "json"] = Field("console", description="console: key=value lines for people; "
                                                                      "json: one JSON object per line")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class OutputSection(_Section):
    dir: str = Field("runs/latest", description="output folder of a replay, relative to the working directory")
    report: bool = True
    benchmark: str = Field("auto", description="what the strategy is compared with: auto (SPY when in the data, "
                                               "else equal_weight), a symbol, equal_weight, equal_weight_hold, none")


class AppConfig(_Section):
    """The whole ``config.toml``, validated.

    ``base_dir`` (the config file's folder), ``origin`` (where the values came from, for
    messages) and ``options`` (dotted key -> the command-line option that set it) are not part
    of the configuration: they are excluded from dumps and from :meth:`config_hash`.
    """

    strategy: StrategySection = StrategySection()
    data: DataSection = DataSection()
    replay: ReplayConfig = ReplayConfig()
    fill: FillConfig = FillConfig()
    risk: RiskConfig = RiskConfig()
    signals: SignalConfig = SignalConfig()
    state: StoreConfig = StoreConfig()
    logging: LoggingSection = LoggingSection()
    output: OutputSection = OutputSection()
    live: LiveConfig = LiveConfig()
    mqtt: MqttConfig | None = Field(None, description="[mqtt]: bars in, telemetry out, control (absent: off)")
    alpaca: AlpacaConfig = Field(AlpacaConfig(), description="[alpaca]: broker and market data (keys from the "
                                 "environment, never here)")
    base_dir: Path = Field(Path("."), exclude=True, description="folder of the config file (for relative paths)")
    origin: str = Field("built-in defaults", exclude=True, description="the file read, or 'built-in defaults'")
    options: dict[str, str] = Field(default_factory=dict, exclude=True,
                                    description="dotted key -> command-line option that set it")

    def label(self, dotted: str) -> str:
        """How to name the setting ``dotted`` (e.g. ``"data.paths"``) in a message: its
        command-line option when one set it, else ``[section] key``."""
        return self.options.get(dotted) or _key_label(dotted)

    def data_files(self) -> list[Path]:
        """Expand ``data.paths`` relative to the config file: globs (sorted within a pattern) and
        folders (their ``*.csv``, ``*.csv.gz`` and ``*.parquet`` files, sorted).

        Raises
        ------
        ConfigError
            If a path or pattern matches no file, or a folder holds no data file.
        """
        files: list[Path] = []
        missing: list[str] = []
        where = self.label("data.paths")
        for pattern in self.data.paths:
            full = Path(pattern) if Path(pattern).is_absolute() else self.base_dir / pattern
            if full.is_dir():
                found = sorted(p for p in full.iterdir() if p.is_file() and p.name.lower().endswith(DATA_SUFFIXES))
                if not found:
                    missing.append(f"{where}: folder {pattern!r} holds no {', '.join(DATA_SUFFIXES)} file")
                files.extend(found)
                continue
            matches = sorted(Path(p) for p in glob.glob(str(full)))
            if not matches:
                missing.append(f"{where}: {pattern!r} matches no file (looked in {full.parent})")
            files.extend(matches)
        if missing:
            raise ConfigError("\n  ".join(missing))
        return files

    def run_spec(self) -> RunSpec:
        """The :class:`backtest.spec.RunSpec` of this configuration (what research and the kernel take)."""
        return RunSpec(strategy=self.strategy.name, params=dict(self.strategy.params), risk=self.risk,
                       fill=self.fill, signals=self.signals, replay=self.replay)

    def config_hash(self) -> str:
        """sha256 of what decides a run's result: the run spec's hash (strategy, parameters, risk,
        fill, signal settings, starting cash) and the data window (start, end, timeframe).

        The data files' content is identified by the data hash, not here; the output folder, the
        database URL, logging and the report switch do not change a result and are left out, so
        identical backtests written to different places share a config hash (and a password can
        never reach a run id).
        """
        window = {"start": _utc(self.data.start), "end": _utc(self.data.end),
                  "timeframe_ns": parse_timeframe(self.data.timeframe) if self.data.timeframe else None}
        payload = json.dumps({"spec": self.run_spec().spec_hash(), "window": window}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def redacted(self) -> dict[str, Any]:
        """The resolved configuration as JSON-ready values, database password masked (what
        ``tradingd check-config`` prints)."""
        dump = self.model_dump(mode="json")
        dump["state"]["database_url"] = mask_url(self.state.database_url)
        return dump


def _utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def _key_label(dotted: str) -> str:
    *section, key = dotted.split(".")
    return f"[{'.'.join(section)}] {key}" if section else f"[{key}]"


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[leaf] = value


def _get_path(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


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
    hidden = {"base_dir", "origin", "options"} if model is AppConfig else set()
    return [name for name in model.model_fields if name not in hidden]


def _shown(dotted: str, value: Any) -> Any:
    """``value`` as it may appear in a message: URLs with their password masked."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, str) and (dotted == "state.database_url" or ("://" in value and "@" in value)):
        return mask_url(value)
    return value


def _describe(err: Mapping[str, Any], options: Mapping[str, str]) -> str:
    loc = [str(p) for p in err["loc"]]
    dotted = ".".join(loc)
    value = _shown(dotted, err.get("input"))
    err = {**err, "msg": str(err["msg"]).removeprefix("Value error, ")}  # pydantic's prefix says nothing
    if err["type"] == "extra_forbidden":  # a typo: say which keys exist, never echo the value (a secret?)
        allowed = ", ".join(_allowed_keys(loc[:-1]) or [])
        if len(loc) == 1:
            return f"[{loc[0]}]: unknown section; allowed sections: {allowed}"
        return f"[{'.'.join(loc[:-1])}] {loc[-1]}: unknown key; allowed keys: {allowed}"
    if dotted in options:  # given on the command line: name the option as the user typed it
        return f"{options[dotted]} {value} (sets {_key_label(dotted)}): {err['msg']}"
    section, key = (f"[{'.'.join(loc[:-1])}] " if len(loc) > 1 else ""), loc[-1] if loc else "?"
    shown = "" if err["type"] == "missing" else f" = {value!r}"
    return f"{section}{key}{shown}: {err['msg']}"


def _strategy_label(options: Mapping[str, str], raw: Any) -> str:
    given = []
    if "strategy.name" in options and isinstance(raw, Mapping):
        given.append(f"{options['strategy.name']} {raw.get('name')}")
    if "strategy.params" in options:
        given.append(options["strategy.params"])
    return f"{' '.join(given)} ([strategy])" if given else "[strategy]"


def _strategy_problem(raw: Any, options: Mapping[str, str]) -> str | None:
    """Check the ``[strategy]`` section on its own, so its problems are listed with all others.

    Resolving the name imports a user strategy's module (``module:Class`` or an entry point); what
    goes wrong there (not found, no such class, not a Strategy, import raising) is reported here.
    """
    try:
        section = StrategySection.model_validate(raw if raw is not None else {})
    except ValidationError:
        return None  # already reported by the validation of the whole file
    try:
        build_strategy(section.name, section.params)
    except StrategyConfigError as exc:
        return f"{_strategy_label(options, raw)} {exc}"
    return None


def _canonical_strategy(section: StrategySection) -> StrategySection:
    """``section`` with its parameters validated and typed (defaults filled in), so ``"10"`` from
    ``--param`` and ``10`` from the file give the same config hash."""
    params = build_strategy(section.name, section.params).params.model_dump(mode="json")
    return StrategySection(name=section.name, params=params)


def _conflicts(config: AppConfig, raw: Mapping[str, Any]) -> list[str]:
    """Settings that are each valid but contradict one another; every message names both keys."""
    problems = []
    if config.strategy.params.get("allow_short") is True and not config.risk.allow_short:
        given = config.options.get("strategy.params")
        ours = f"{given} allow_short=true" if given else "[strategy.params] allow_short = true"
        risk_from = "" if _get_path(raw, "risk.allow_short") is not None else " (built-in default)"
        problems.append(f"{ours} conflicts with [risk] allow_short = false{risk_from}: the risk engine would "
                        "deny every short entry the strategy makes; set [risk] allow_short = true as well, or "
                        "drop the strategy's allow_short")
    live = config.live
    if live.mode == "live" and live.broker != "alpaca":
        problems.append('[live] mode = "live" needs [live] broker = "alpaca": the paper broker trades no money')
    if live.mode == "live" and not config.alpaca.live_account_number:
        problems.append('[live] mode = "live" needs [alpaca] live_account_number = "<your Alpaca account number>": '
                        "the confirmation that this configuration trades real money on that account")
    if live.feed == "alpaca" and not config.alpaca.symbols:
        problems.append('[live] feed = "alpaca" needs [alpaca] symbols = ["SPY", ...]: the symbols to stream')
    return problems


def _database_url(raw: dict[str, Any], overrides: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """Put ``TRADINGD_DATABASE_URL`` into ``raw`` unless an override sets the URL; return where
    the URL comes from: the option's dotted key, the variable's name, or None (the file/default)."""
    if "state.database_url" in overrides:
        return "state.database_url"
    from_env = environ.get(ENV_DATABASE_URL, "").strip()
    if from_env:
        _set_path(raw, "state.database_url", from_env)
        return ENV_DATABASE_URL
    return None


def _url_problem(raw: Mapping[str, Any], source: str | None, options: Mapping[str, str]) -> str | None:
    url = _get_path(raw, "state.database_url")
    if not isinstance(url, str) or not url.strip():
        return None  # not a string or empty: the model's validation says so
    problem = url_problem(url.strip())
    if problem is None:
        return None
    if source == ENV_DATABASE_URL:
        where = f"{ENV_DATABASE_URL} (environment) = {mask_url(url)!r}"
    elif source is not None:
        where = f"{options.get(source, '--db')} {mask_url(url)} (sets [state] database_url)"
    else:
        where = f"[state] database_url = {mask_url(url)!r}"
    return f"{where}: {problem}"


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None, *,
                options: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read ``path`` (TOML; ``None`` = built-in defaults), apply the environment and dotted
    ``overrides`` such as ``{"risk.max_drawdown": 0.1, "strategy.params": {...}}`` and validate
    everything, including the strategy's parameters, the database URL and settings that
    contradict each other.

    Parameters
    ----------
    path
        The TOML file, or None for the built-in defaults.
    overrides
        Dotted keys and values, applied over the file (the command line's options).
    options
        Dotted key -> the option text that set it (``{"fill.slippage_bps": "--slippage-bps"}``):
        messages about those values name the option.
    environ
        Where ``TRADINGD_DATABASE_URL`` and ``TRADINGD_DATABASE_PASSWORD`` are read (default
        ``os.environ``).

    Returns
    -------
    AppConfig
        Validated, with canonical strategy parameters and the resolved database URL (password from
        the environment set; a relative SQLite path from the file resolved against its folder).

    Raises
    ------
    ConfigError
        If the file is missing or not valid TOML, or any value is invalid (all problems listed).
    """
    overrides = dict(overrides or {})
    options = dict(options or {})
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    base = Path(".")
    origin = "built-in defaults"
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
    url_source = _database_url(raw, overrides, environ)
    for dotted, value in overrides.items():
        _set_path(raw, dotted, value)
    heading = f"{origin} + command-line options" if overrides else origin
    problems: list[str] = []
    config: AppConfig | None = None
    try:
        config = AppConfig.model_validate({**raw, "base_dir": base, "origin": origin, "options": options})
    except ValidationError as exc:
        problems.extend(_describe(err, options) for err in exc.errors())
    for problem in (_strategy_problem(raw.get("strategy"), options), _url_problem(raw, url_source, options)):
        if problem:
            problems.append(problem)
    if not problems and config is not None:
        config = config.model_copy(update={"strategy": _canonical_strategy(config.strategy)})
        problems.extend(_conflicts(config, raw))
    if problems or config is None:
        listed = "\n  ".join(problems)
        raise ConfigError(f"{heading}: invalid configuration:\n  {listed}")
    url = config.state.database_url
    password = environ.get(ENV_DATABASE_PASSWORD, "")
    if password:
        url = with_password(url, password)
    if url_source is None:  # from the file (or the built-in default next to it): relative to the file
        url = resolve_sqlite(url, base)
    if url != config.state.database_url:
        config = config.model_copy(update={"state": config.state.model_copy(update={"database_url": url})})
    return config
