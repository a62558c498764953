"""A finished replay as the research commands read it back: from its output folder, or from the
rows the state database keeps of it (built by ``daemon.run_source``).

Every command of the second research half (Monte Carlo, benchmarks, robustness, sizing,
attribution, journal, readiness) starts from a :class:`FinishedRun`, so none of them parses the
output files on its own, and the ones that replay again get the run's exact settings back
(:func:`run_spec`, :func:`load_run_bars`).

Frames use the output folder's layouts (``schema.json``): times are tz-aware UTC timestamps, money
USD, quantities shares, returns fractions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from backtest.data import load_data
from backtest.sources import BarSeries
from backtest.spec import RunSpec
from core.events import TradeClosed
from core.ports import Decision, EquitySnapshot
from research.frames import (DECISION_COLUMNS, FILL_COLUMNS, LINKED_TRADE_COLUMNS, ORDER_COLUMNS, POSITION_COLUMNS,
                             decisions_frame)

__all__ = ["FinishedRun", "RunLoadError", "load_run_bars", "load_run_folder", "run_from_rows", "run_spec"]

_TIME_COLUMNS = {"trades.csv": ("entry_time", "exit_time"), "fills.csv": ("time",), "positions.csv": ("entry_time",),
                 "orders.csv": ("created_time", "updated_time"), "decisions.csv": ("time",)}
_TEXT_COLUMNS = ("client_order_id", "reason", "regime", "exit_reason", "entry_order_ids", "exit_order_ids",
                 "entry_fill_ids", "exit_fill_ids", "broker_order_id", "fill_id")


class RunLoadError(ValueError):
    """A run that cannot be read back, or that lacks what a command needs; the message says which
    run, which file or row, and what to do."""


@dataclass(frozen=True)
class FinishedRun:
    """One finished replay.

    Attributes
    ----------
    run_id, strategy : str
        The run id (as in the state database) and the strategy id.
    params : dict
        The strategy parameters the run used.
    symbols : list[str]
        Symbols of the run's data.
    timeframe : str
        Bar length, e.g. ``"1h"``.
    starting_cash : float
        USD.
    equity : pd.Series
        Account equity in USD (float64) indexed by bar end (UTC, increasing). From an output
        folder: one point per bar timestamp; from the database: the equity snapshots
        (``[replay] snapshot_interval``, daily by default), after the first bar end at the
        starting cash when the run records it (``run_info["equity_span"]``).
    trades : pd.DataFrame
        Closed round trips, columns of ``trades.csv`` (``pnl`` USD net of commission, ``return``
        fraction). From the database the order/fill link columns are empty strings.
    fills, orders, decisions : pd.DataFrame
        Columns of ``fills.csv``, ``orders.csv`` and ``decisions.csv``.
    positions : pd.DataFrame
        Positions still open at the end, columns of ``positions.csv`` (``unrealized_pnl`` USD, before
        commission); from the database: symbol, quantity and avg_price only, the rest NaN.
    run_info : dict
        The ``run`` block of ``metrics.json`` (strategy, params, risk, fill, replay, signals,
        data files and window, hashes); what :func:`run_spec` and :func:`load_run_bars` read.
    metrics : dict
        The whole ``metrics.json`` document (empty for a database run without one).
    folder : Path or None
        The output folder it was read from.
    """

    run_id: str
    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    timeframe: str
    starting_cash: float
    equity: pd.Series
    trades: pd.DataFrame
    fills: pd.DataFrame
    orders: pd.DataFrame
    decisions: pd.DataFrame
    run_info: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    positions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=POSITION_COLUMNS))

    @property
    def total_pnl(self) -> float:
        """Equity change over the run, USD (closed trades plus what is still open)."""
        return float(self.equity.iloc[-1] - self.starting_cash) if len(self.equity) else 0.0

    def require_trades(self, command: str, minimum: int = 1) -> None:
        """Raise :class:`RunLoadError` unless the run closed at least ``minimum`` trades."""
        if len(self.trades) < minimum:
            raise RunLoadError(f"run {self.run_id} closed {len(self.trades)} trade(s); `tradingd {command}` needs "
                               f"at least {minimum}. Replay a longer period or a strategy that trades.")


def _read_csv(folder: Path, name: str, columns: Sequence[str]) -> pd.DataFrame:
    path = folder / name
    if not path.is_file():
        if name == "decisions.csv":  # folders written before decisions.csv existed
            return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
        raise RunLoadError(f"{path} is missing: {folder} is not a complete replay output folder "
                           "(run `tradingd replay --out DIR` again)")
    text = {c: "string" for c in _TEXT_COLUMNS if c in columns}
    try:
        frame = pd.read_csv(path, dtype=text, keep_default_na=False, na_values={
            c: [""] for c in columns if c not in text})
    except (ValueError, pd.errors.ParserError) as exc:
        raise RunLoadError(f"{path} cannot be read as CSV: {exc}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RunLoadError(f"{path} lacks the columns {missing}; it was not written by `tradingd replay`")
    for column in _TIME_COLUMNS.get(name, ()):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    for column in text:
        frame[column] = frame[column].astype(object)
    return frame


def load_run_folder(folder: str | Path) -> FinishedRun:
    """Read a replay output folder (``tradingd replay --out DIR``).

    Raises
    ------
    RunLoadError
        If the folder or one of ``metrics.json``, ``equity.csv``, ``trades.csv``, ``fills.csv``,
        ``orders.csv`` is missing or unreadable, or the equity curve is empty.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunLoadError(f"{folder} is not a folder")
    metrics_path = folder / "metrics.json"
    if not metrics_path.is_file():
        raise RunLoadError(f"{folder} has no metrics.json: not a replay output folder")
    try:
        metrics = json.loads(metrics_path.read_text())
        info = dict(metrics["run"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunLoadError(f"{metrics_path} is not a replay's metrics.json ({exc})") from exc
    equity_frame = _read_csv(folder, "equity.csv", ["time", "equity"])
    if equity_frame.empty:
        raise RunLoadError(f"{folder / 'equity.csv'} has no rows: the run replayed no bar")
    equity = pd.Series(equity_frame["equity"].to_numpy(dtype="float64"),
                       index=pd.DatetimeIndex(pd.to_datetime(equity_frame["time"], utc=True, format="ISO8601")),
                       name="equity")
    return FinishedRun(
        run_id=str(info.get("run_id", folder.name)), strategy=str(info.get("strategy", "")),
        params=dict(info.get("params") or {}), symbols=list(info.get("symbols") or []),
        timeframe=str(info.get("timeframe", "")), starting_cash=float(info.get("starting_cash") or equity.iloc[0]),
        equity=equity, trades=_read_csv(folder, "trades.csv", LINKED_TRADE_COLUMNS),
        fills=_read_csv(folder, "fills.csv", FILL_COLUMNS), orders=_read_csv(folder, "orders.csv", ORDER_COLUMNS),
        decisions=_read_csv(folder, "decisions.csv", DECISION_COLUMNS), run_info=info, metrics=metrics,
        folder=folder, positions=_read_csv(folder, "positions.csv", POSITION_COLUMNS))


def _trades_frame(trades: Sequence[TradeClosed]) -> pd.DataFrame:
    rows = [{"trade_id": n, "symbol": t.symbol, "side": t.side.value, "quantity": t.quantity,
             "entry_time": t.entry_ts, "exit_time": t.exit_ts, "entry_price": t.entry_price,
             "exit_price": t.exit_price, "pnl": t.pnl, "return": t.pnl / (t.entry_price * t.quantity),
             "commission": t.commission, "exit_reason": t.exit_reason,
             "holding_time_s": (t.exit_ts - t.entry_ts) / 1e9, "entry_order_ids": "", "exit_order_ids": "",
             "entry_fill_ids": "", "exit_fill_ids": ""} for n, t in enumerate(trades, start=1)]
    frame = pd.DataFrame(rows, columns=LINKED_TRADE_COLUMNS)
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column].astype("int64"), unit="ns", utc=True)
    return frame


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.astype("int64"), unit="ns", utc=True)


def _with_first_point(curve: pd.Series, info: dict[str, Any], starting_cash: float) -> pd.Series:
    """``curve`` (the database's equity snapshots, the first at the end of the first snapshot
    interval) with the replay's first point put back: (first bar end, starting cash), from
    ``run_info["equity_span"]["first"]`` (recorded by ``daemon.replay_job``; the equity there is
    the starting cash, as no order can fill before the second bar). Runs recorded before that
    field existed, or whose first snapshot is already that bar, are returned unchanged."""
    span = info.get("equity_span")
    first = span.get("first") if isinstance(span, dict) else None
    if not first:
        return curve
    try:
        start = pd.Timestamp(first)
    except ValueError:
        return curve
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    if len(curve) and start >= curve.index[0]:
        return curve
    head = pd.Series([starting_cash], index=pd.DatetimeIndex([start]), name="equity", dtype="float64")
    return pd.concat([head, curve])


def run_from_rows(run: dict[str, Any], trades: Sequence[TradeClosed], equity: Sequence[EquitySnapshot],
                  fills: Sequence[dict[str, Any]], orders: Sequence[dict[str, Any]],
                  decisions: Sequence[Decision], positions: Sequence[dict[str, Any]] = ()) -> FinishedRun:
    """Build a :class:`FinishedRun` from a run's rows in the state database (``SqlStore.run``,
    ``trades``, ``equity``, ``fills``, ``orders``, ``decisions``, ``positions``).

    The equity curve is the snapshots, preceded by (first bar end, starting cash) when the run
    records its ``equity_span``, so it starts where the output folder's ``equity.csv`` does: the
    total return, CAGR and the benchmarks' purchase time agree with the folder's; the drawdown is
    only seen at the snapshot interval.

    Raises
    ------
    RunLoadError
        If the run has no equity snapshot.
    """
    run_id = str(run["id"])
    if not equity:
        raise RunLoadError(f"run {run_id} has no equity snapshot in the state database (status {run.get('status')})")
    metrics = dict(run.get("metrics") or {})
    info = dict(metrics.get("run") or {"run_id": run_id, "strategy": run.get("strategy_id"),
                                       "params": run.get("params") or {}})
    curve = pd.Series([s.equity for s in equity], index=pd.DatetimeIndex(_utc(pd.Series([s.ts for s in equity]))),
                      name="equity", dtype="float64")
    curve = curve[~curve.index.duplicated(keep="last")]
    starting = float(info.get("starting_cash") or curve.iloc[0])
    curve = _with_first_point(curve, info, starting)
    fill_frame = pd.DataFrame([{"time": f["ts_event"], "symbol": f["symbol"], "side": f["side"].value,
                                "quantity": f["quantity"], "price": f["price"], "commission": f["commission"],
                                "slippage": f["slippage"], "client_order_id": f["client_order_id"],
                                "fill_id": f["fill_id"]} for f in fills], columns=FILL_COLUMNS)
    fill_frame["time"] = _utc(fill_frame["time"])
    order_frame = pd.DataFrame([{"client_order_id": o["client_order_id"], "created_time": o["ts_created"],
                                 "updated_time": o["ts_last"], "symbol": o["symbol"], "side": o["side"].value,
                                 "order_type": o["order_type"].value, "quantity": o["quantity"],
                                 "limit_price": o.get("limit_price"), "stop_price": o.get("stop_price"),
                                 "status": o["status"].value, "filled_quantity": o.get("filled_quantity"),
                                 "avg_fill_price": o.get("avg_fill_price"), "commission": o.get("commission"),
                                 "reason": o.get("reason", ""), "broker_order_id": o.get("broker_order_id", "")}
                                for o in orders], columns=ORDER_COLUMNS)
    for column in ("created_time", "updated_time"):
        order_frame[column] = _utc(order_frame[column])
    return FinishedRun(
        run_id=run_id, strategy=str(info.get("strategy") or run.get("strategy_id", "")),
        params=dict(info.get("params") or run.get("params") or {}), symbols=list(info.get("symbols") or []),
        timeframe=str(info.get("timeframe", "")), starting_cash=starting, equity=curve,
        trades=_trades_frame(trades), fills=fill_frame, orders=order_frame, decisions=decisions_frame(decisions),
        run_info=info, metrics=metrics, folder=None,
        positions=pd.DataFrame([{"symbol": p["symbol"], "quantity": p["quantity"], "avg_price": p["avg_price"]}
                                for p in positions if p["quantity"]], columns=POSITION_COLUMNS))


def run_spec(run: FinishedRun, **overrides: Any) -> RunSpec:
    """The :class:`backtest.spec.RunSpec` the run was replayed with (strategy, parameters, risk,
    fill, signals, replay settings), with ``overrides`` (``risk=...``, ``fill=...``) replacing
    whole sections.

    Raises
    ------
    RunLoadError
        If the run does not record its settings (a run from before they were recorded), or they
        no longer validate.
    """
    info = run.run_info
    missing = [k for k in ("risk", "fill", "replay", "signals") if k not in info and k not in overrides]
    if missing:
        raise RunLoadError(f"run {run.run_id} does not record its {', '.join(missing)} settings; replay it again "
                           "with this version of tradingd")
    try:
        spec = RunSpec.model_validate({"strategy": run.strategy, "params": run.params,
                                       **{k: info[k] for k in ("risk", "fill", "replay", "signals") if k in info}})
    except ValueError as exc:
        raise RunLoadError(f"run {run.run_id}: its recorded settings do not validate: {exc}") from exc
    return spec.model_copy(update=overrides) if overrides else spec


def load_run_bars(run: FinishedRun, paths: Sequence[str | Path] | None = None) -> list[BarSeries]:
    """Load the run's bars again: its data files (or ``paths``), its window and its timeframe.

    Raises
    ------
    RunLoadError
        If the run does not record its data files and ``paths`` is not given, or a file is gone.
    backtest.sources.DataError
        If a file is no longer valid bar data.
    """
    files = list(paths) if paths else list(run.run_info.get("data_files") or [])
    if not files:
        raise RunLoadError(f"run {run.run_id} does not record its data files; pass them with --data")
    gone = [str(p) for p in files if not Path(p).is_file()]
    if gone:
        raise RunLoadError(f"run {run.run_id}: data file(s) {gone} no longer exist; pass the data with --data")
    window = run.run_info.get("data") or {}
    start = pd.Timestamp(window["start"]).to_pydatetime() if window.get("start") else None
    end = pd.Timestamp(window["end"]).to_pydatetime() if window.get("end") else None
    timeframe = window.get("timeframe") or run.timeframe or None
    calendars = (run.run_info.get("fill") or {}).get("calendars") or None
    return load_data(files, timeframe=timeframe, start=start, end=end, calendars=calendars)
