"""What each file of a replay's output folder holds: columns, units and conventions (``schema.json``).

Kept next to the writers in :mod:`research.output` and :mod:`research.frames`; a test checks
that every column written is documented here, so the schema cannot drift from the files.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONVENTIONS", "FILES", "schema_document"]

SCHEMA_VERSION = 1

CONVENTIONS: dict[str, str] = {
    "times": "ISO-8601 UTC (e.g. 2019-01-02T15:00:00.000000Z); replay (market) time, never the wall clock",
    "money": "USD",
    "quantities": "shares; signed where stated (positive long, negative short)",
    "fractions": "fractions, not percent (0.01 = 1%)",
    "net_of_costs": ("equity, cash and trades.pnl are net of every cost: commission is subtracted from cash and "
                     "from pnl, slippage is inside the fill prices (so inside pnl and equity too). The commission "
                     "and slippage columns say what was paid; do not subtract them again. Benchmarks have no costs."),
    "drawdown_sign": ("equity.csv drawdown = equity / running peak - 1, a fraction <= 0 (-0.1 = 10% below the "
                      "peak); metrics.json max_drawdown is its magnitude, a positive fraction (0.1)"),
    "bar_times": ("a bar is labelled by its start and becomes known at its end: equity points are at bar ends; "
                  "fills at the start of the bar they traded on"),
    "id_lists": "several ids in one CSV cell are joined by ';' in fill order",
    "durations": "numbers in seconds (_seconds) and days (_days) next to a text form",
}

_TRADE_COLUMNS: dict[str, str] = {
    "trade_id": "1, 2, ... in closing order",
    "symbol": "symbol",
    "side": "side of the entry: buy = long trade, sell = short trade",
    "quantity": "largest absolute position held during the trade, shares",
    "entry_time": "first entry fill (start of the bar it traded on), UTC",
    "exit_time": "closing fill (start of the bar it traded on), UTC",
    "entry_price": "volume-weighted entry fill price, USD per share (slippage included)",
    "exit_price": "volume-weighted exit fill price, USD per share (slippage included)",
    "pnl": "realized P&L, USD, net of commission (slippage is inside the prices)",
    "return": "pnl / (entry_price * quantity), fraction",
    "commission": "commission of the trade's fills, USD (a reversal fill's commission is shared pro rata)",
    "exit_reason": "why the closing order was sent (strategy signal, stop, flatten on halt, ...)",
    "holding_time_s": "exit_time - entry_time, seconds",
    "entry_order_ids": "client_order_id of the orders whose fills opened or added to the trade (orders.csv)",
    "exit_order_ids": "client_order_id of the orders whose fills reduced or closed it (orders.csv)",
    "entry_fill_ids": "fill_id of the entry fills (fills.csv)",
    "exit_fill_ids": "fill_id of the exit fills (fills.csv); a reversal fill is both the exit of one trade and "
                     "the entry of the next",
}

FILES: dict[str, dict[str, Any]] = {
    "metrics.json": {
        "description": "Run information and headline results of the strategy and its benchmark",
        "keys": {
            "run": ("run information: id, strategy, params, symbols (list), data files and window, fill/risk/replay/"
                    "signal settings, hashes, out_dir, equity_span (first and last bar end, UTC)"),
            "strategy": "performance metrics of the strategy (fractions; max_drawdown positive)",
            "benchmark": "the same metrics of the benchmark, or null with --benchmark none",
            "benchmark_name": "resolved benchmark: a symbol (buy and hold), equal_weight, equal_weight_hold or none",
            "benchmark_label": "how the benchmark is labelled in tables",
            "benchmark_rule": "how the benchmark is built",
            "risk": ("risk of strategy and benchmark (null without one), from daily returns: observations; "
                     "var_95, cvar_95, var_99, cvar_99 = historical VaR and expected shortfall, positive "
                     "fractions = a daily loss (VaR = -r(ceil(n p)), the empirical lower p-quantile, p = 1 - "
                     "level; CVaR = mean loss of the worst n p days, Acerbi & Tasche 2002; null when n p < 1); "
                     "var_method; rolling = window (daily returns), windows, sharpe and volatility {last, min, "
                     "max} (annualised, as the report's rolling charts); equity_high = distance (last equity / "
                     "running peak - 1, fraction <= 0), peak (USD), peak_time (UTC, last time at the high), "
                     "time_since (seconds, days, text)"),
            "exposure": "average gross exposure / equity of strategy and benchmark, fractions",
            "costs": "commission, slippage and their total over all fills, USD; fills = count",
            "trading_state": "trading state at the end: active, reducing or halted",
            "trading_state_reason": "why it is in that state",
            "trading_state_since": "when the final non-active state was entered (UTC), else null",
            "state_changes": "every trading-state change as {time, previous, current, reason} (as breakers.csv)",
            "time_in_state": "time spent reducing and halted: seconds, days, text and fraction of the run",
            "trade_stats": "average win/loss (USD), payoff ratio, average holding time (seconds, days, text)",
            "orders": "denied (by our risk engine), denied_while_halted, rejected (by the broker) counts",
            "open_positions": "number of positions open at the end (positions.csv)",
            "bars": "bars replayed", "dropped_bars": "bars refused by the engine's bar gate",
            "strategy_enabled": "false when the strategy was disabled after raising",
        },
    },
    "equity.csv": {
        "description": "One row per bar timestamp (bars of several symbols sharing a time collapse into one)",
        "columns": {
            "time": "bar end (when its close became known), UTC",
            "cash": "cash, USD",
            "equity": "cash + positions marked at their last close, USD, net of all costs",
            "gross_exposure": "sum of |position market value|, USD",
            "exposure": "gross_exposure / equity, fraction",
            "drawdown": "equity / running peak - 1, fraction <= 0",
            "benchmark": "benchmark value, USD (absent with --benchmark none)",
            "benchmark_exposure": "benchmark invested value / benchmark value, fraction (below 1 while cash waits "
                                  "for a symbol whose data start later)",
        },
    },
    "trades.csv": {"description": "One row per closed round trip (flat -> position -> flat or reversed)",
                   "columns": _TRADE_COLUMNS},
    "fills.csv": {
        "description": "One row per fill (execution), in the order the engine booked them",
        "columns": {
            "time": "start of the bar the fill traded on (market orders fill at its open), UTC",
            "symbol": "symbol", "side": "buy or sell", "quantity": "shares filled (> 0)",
            "price": "fill price, USD per share, slippage included",
            "commission": "commission of this fill, USD",
            "slippage": "quantity x |price - reference price|, USD: the adverse move already inside price",
            "client_order_id": "our order id (orders.csv)", "fill_id": "the venue's fill id",
        },
    },
    "orders.csv": {
        "description": "One row per order in submission order, with its final status",
        "columns": {
            "client_order_id": "our id, derived from strategy, symbol, bar time and sequence",
            "created_time": "decision time (bar end at which the strategy asked), UTC",
            "updated_time": "last status change, UTC",
            "symbol": "symbol", "side": "buy or sell", "order_type": "market, limit or stop",
            "quantity": "shares ordered", "limit_price": "USD or empty", "stop_price": "USD or empty",
            "status": "final status: filled, partially_filled, canceled, rejected, expired, accepted, submitted",
            "filled_quantity": "shares filled", "avg_fill_price": "USD per share, slippage included",
            "commission": "total commission, USD", "reason": "why it was sent (or canceled/rejected)",
            "broker_order_id": "the venue's id",
        },
    },
    "positions.csv": {
        "description": "Positions still open at the end of the run (header only when flat), sorted by symbol",
        "columns": {
            "symbol": "symbol", "side": "long or short", "quantity": "signed shares",
            "avg_price": "average entry price, USD per share", "mark": "last close, USD per share",
            "market_value": "quantity x mark, USD (signed)",
            "unrealized_pnl": "quantity x (mark - avg_price), USD (commission not included)",
            "weight": "market_value / ending equity, signed fraction",
            "entry_time": "first fill of the round trip still open, UTC",
        },
    },
    "decisions.csv": {
        "description": ("Every decision of the engine about a strategy intent, in time order: submitted (an order "
                        "went out) or denied by the risk engine"),
        "columns": {
            "time": "decision time (end of the bar the strategy saw), UTC",
            "strategy_id": "strategy", "symbol": "symbol", "side": "buy or sell",
            "quantity": "shares (sized by the risk engine; 0 when denied before sizing)",
            "outcome": "submitted or denied",
            "reason": "the strategy's reason for a submission, the risk engine's reason for a denial",
            "client_order_id": "the order sent (orders.csv), empty when denied",
            "confidence": "the strategy's signal strength in [0, 1], empty when it gave none",
            "regime": "market regime the detector saw at that bar (empty when the detector is off)",
        },
    },
    "breakers.csv": {
        "description": "Every trading-state change (breaker trips, cool-down ends, commands), in replay-time order",
        "columns": {
            "time": "replay time of the change, UTC",
            "previous": "state before: active, reducing or halted", "current": "state after",
            "reason": "why (the breaker's rule and the numbers that tripped it)",
        },
    },
    "schema.json": {"description": "This file: what every output file holds"},
    "report.html": {"description": "Self-contained HTML tear sheet (opens offline); absent with --no-report"},
}


def schema_document(files: list[str]) -> dict[str, Any]:
    """Return the ``schema.json`` document for the output files ``files``.

    Parameters
    ----------
    files : list[str]
        Names of the files written (keys of :data:`FILES`).

    Returns
    -------
    dict[str, Any]
        ``{"schema_version", "conventions", "files": {name: {description, columns|keys}}}``.

    Raises
    ------
    KeyError
        If a file is not documented in :data:`FILES`.

    Examples
    --------
    >>> doc = schema_document(["breakers.csv"])
    >>> list(doc["files"]), list(doc["files"]["breakers.csv"]["columns"])
    (['breakers.csv'], ['time', 'previous', 'current', 'reason'])
    """
    return {"schema_version": SCHEMA_VERSION, "conventions": CONVENTIONS,
            "files": {name: FILES[name] for name in files}}
