"""SignalPipeline: per-symbol features, regime detector and online learner behind the
:class:`core.ports.SignalModel` port the engine calls once per bar.

Two ways in: :meth:`SignalPipeline.on_bar` updates everything at once and reports regime
changes (for :class:`core.events.RegimeChanged` subscribers); :meth:`SignalPipeline.observe`
updates features and learner at once but only queues the close for the regime detector, which
catches up in one batch when the regime is read (a decision being recorded) or every
:data:`MAX_PENDING_CLOSES` closes. Both give the same regime at every read; the queue halves the
detector's cost, the largest single cost of a replay.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.enums import Regime
from core.events import Bar
from learning.features import FeatureConfig, StreamingFeatures
from learning.learner import LearnerConfig, OnlineLearner
from learning.regime import RegimeConfig, RegimeDetector


class SignalConfig(BaseModel):
    """What runs per bar. Features are computed only when the learner needs them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    regime_enabled: bool = Field(True, description="run the regime detector (emits RegimeChanged)")
    learner_enabled: bool = Field(False, description="run features + online learner (set by strategies that use it)")
    features: FeatureConfig = FeatureConfig()
    regime: RegimeConfig = RegimeConfig()
    learner: LearnerConfig = LearnerConfig()


MAX_PENDING_CLOSES = 4096
"""Closes :meth:`SignalPipeline.observe` queues per symbol before the detector catches up anyway
(bounds the queue: 32 KiB a symbol)."""


class _SymbolSignals:
    __slots__ = ("features", "regime", "learner", "last_features", "prediction", "current_regime", "pending")

    def __init__(self, config: SignalConfig) -> None:
        self.features = StreamingFeatures(config.features) if config.learner_enabled else None
        self.regime = RegimeDetector(config.regime) if config.regime_enabled else None
        self.learner = OnlineLearner(config.learner) if config.learner_enabled else None
        self.last_features: dict[str, float] | None = None
        self.prediction: float | None = None
        self.current_regime = Regime.UNKNOWN
        # closes observed, not yet given to the regime detector (None: no detector)
        self.pending: list[float] | None = [] if self.regime is not None else None

    def catch_up(self) -> None:
        """Feed the queued closes to the detector (in one batch) and take its regime."""
        assert self.regime is not None and self.pending is not None  # only an enabled detector queues
        self.current_regime = self.regime.update_closes(self.pending)
        self.pending = []


class SignalPipeline:
    """Features -> regime -> learner for every symbol, O(1) per bar.

    Parameters
    ----------
    config
        See :class:`SignalConfig`.

    Notes
    -----
    The engine is the one gate for bars (:mod:`core.bars`): it calls :meth:`on_bar` only with
    sound bars and strictly increasing ``ts_event`` per symbol, and the components rely on it.
    For such bars every feature, prediction and regime output is finite.
    """

    def __init__(self, config: SignalConfig) -> None:
        self.config = config
        self._symbols: dict[str, _SymbolSignals] = {}

    def on_bar(self, bar: Bar) -> tuple[Regime, Regime] | None:
        """Update ``bar.symbol``'s signals; return (previous, current) when its regime changed on
        this bar (closes queued by :meth:`observe` before it are caught up first, silently)."""
        s = self._symbols.get(bar.symbol)
        if s is None:
            s = self._symbols[bar.symbol] = _SymbolSignals(self.config)
        change = None
        if s.regime is not None:
            if s.pending:
                s.catch_up()
            regime = s.regime.update(bar)
            if regime is not s.current_regime:
                change = (s.current_regime, regime)
                s.current_regime = regime
        if s.learner is not None and s.features is not None:  # both exist iff learner_enabled
            features = s.features.update(bar)
            s.last_features = features
            s.prediction = s.learner.on_bar(bar, features)
        return change

    def observe(self, bar: Bar) -> None:
        """Update ``bar.symbol``'s features and learner now; queue its close for the regime
        detector (see the module docstring). For when no one needs regime changes bar by bar.

        ``bar`` must have passed the engine's gate (a positive finite close): queued closes are
        not checked again.
        """
        s = self._symbols.get(bar.symbol)
        if s is None:
            s = self._symbols[bar.symbol] = _SymbolSignals(self.config)
        pending = s.pending
        if pending is not None:
            pending.append(bar.close)
            if len(pending) >= MAX_PENDING_CLOSES:
                s.catch_up()
        if s.learner is not None:  # features exist iff the learner does
            features = s.features.update(bar)  # type: ignore[union-attr]
            s.last_features = features
            s.prediction = s.learner.on_bar(bar, features)

    def features(self, symbol: str) -> dict[str, float] | None:
        """Latest features of ``symbol`` (None when the learner is off or warming up)."""
        s = self._symbols.get(symbol)
        return s.last_features if s is not None else None

    def prediction(self, symbol: str) -> float | None:
        """Latest P(forward return > threshold) of ``symbol`` in [0, 1], or None before the
        learner has ``min_samples`` matured labels."""
        s = self._symbols.get(symbol)
        return s.prediction if s is not None else None

    def regime(self, symbol: str) -> Regime:
        """Current regime of ``symbol`` (UNKNOWN before its first bars or when disabled)."""
        s = self._symbols.get(symbol)
        if s is None:
            return Regime.UNKNOWN
        if s.pending:
            s.catch_up()
        return s.current_regime

    def restore_learners(self, states: dict[str, bytes]) -> None:
        """Put back learners saved by :meth:`learner_states` (after a restart).

        Only the learners come back: features and the regime detector warm up again on new bars
        (their state is a few windows of bars, not learned knowledge).

        Raises
        ------
        ValueError
            If a payload is not a learner state of this configuration's model kind.
        """
        if not self.config.learner_enabled:
            return
        for symbol, data in states.items():
            s = self._symbols.get(symbol)
            if s is None:
                s = self._symbols[symbol] = _SymbolSignals(self.config)
            s.learner = OnlineLearner.from_bytes(data, self.config.learner)

    def learner_states(self) -> dict[str, bytes]:
        """Serialized learner per symbol (for the model registry; no I/O here)."""
        return {sym: s.learner.to_bytes() for sym, s in self._symbols.items() if s.learner is not None}
