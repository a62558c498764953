"""Per-symbol online classifier (River) with delayed labels: look-ahead is impossible by construction.

A sample (features of bar ``i``, close ``c_i``) is only learnt at bar ``j = i + horizon_bars``, when
its label ``c_j / c_i - 1 > label_threshold`` has become known. Predictions at bar ``t`` therefore
depend on bars ``<= t`` only.
"""

from __future__ import annotations

import pickle
from collections import deque
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.events import Bar

__all__ = ["LearnerConfig", "OnlineLearner"]

_FORMAT = 1  # version of the to_bytes payload


class LearnerConfig(BaseModel):
    """Configuration of :class:`OnlineLearner`.

    Parameters
    ----------
    model : {"logistic", "hoeffding_tree"}
        ``"logistic"``: ``StandardScaler | LogisticRegression`` trained by SGD;
        ``"hoeffding_tree"``: ``HoeffdingTreeClassifier`` (Domingos & Hulten 2000).
    horizon_bars : int
        Bars until a label matures (>= 1).
    label_threshold : float
        Label is ``forward simple return > label_threshold`` (a fraction, finite).
    learning_rate : float
        SGD step size of the logistic model (> 0).
    l2 : float
        L2 penalty of the logistic model (>= 0).
    min_samples : int
        Labels to learn before the first prediction (>= 0).
    seed : int
        Random seed (>= 0), passed to models that take one; both current models are deterministic.

    Raises
    ------
    pydantic.ValidationError
        On an out-of-range value or an unknown key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Literal["logistic", "hoeffding_tree"] = "logistic"
    horizon_bars: int = Field(default=5, ge=1)
    label_threshold: float = Field(default=0.0, allow_inf_nan=False)
    learning_rate: float = Field(default=0.01, gt=0.0, allow_inf_nan=False)
    l2: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    min_samples: int = Field(default=100, ge=0)
    seed: int = Field(default=42, ge=0)


def _build_model(config: LearnerConfig):  # noqa: ANN202 - a River estimator or pipeline
    if config.model == "logistic":
        from river import linear_model, optim, preprocessing  # imported when a learner is built, not for --help

        return preprocessing.StandardScaler() | linear_model.LogisticRegression(
            optimizer=optim.SGD(config.learning_rate), l2=config.l2
        )
    from river import tree

    return tree.HoeffdingTreeClassifier()


class OnlineLearner:
    """Online binary classifier of "forward return over ``horizon_bars`` exceeds the threshold".

    Parameters
    ----------
    config : LearnerConfig, optional
        Model and label definition; defaults to ``LearnerConfig()``.

    Notes
    -----
    Per bar (:meth:`on_bar`): first every pending sample that matured at this bar is learnt, then
    the new sample is queued and predicted. At most ``horizon_bars`` samples are pending. The
    bar index counts bars (also those without features), so the horizon is in bars. The caller
    (the engine, see :mod:`core.bars`) guarantees strictly increasing ``ts_event``: duplicates and
    out-of-order bars are dropped before they get here, so they are not checked again. The
    feature dicts are kept by reference until their label matures: do not mutate them.
    Not thread-safe; one instance per symbol.
    """

    __slots__ = ("config", "_model", "_pending", "_index", "_learned", "_horizon", "_threshold")

    def __init__(self, config: LearnerConfig | None = None) -> None:
        self.config = config = config if config is not None else LearnerConfig()
        self._horizon = config.horizon_bars
        self._threshold = config.label_threshold
        self._model = _build_model(config)
        self._pending: deque[tuple[int, dict[str, float], float]] = deque(maxlen=config.horizon_bars)
        self._index = -1
        self._learned = 0

    @property
    def samples_learned(self) -> int:
        """Number of matured labels learnt so far."""
        return self._learned

    @property
    def pending(self) -> int:
        """Number of samples waiting for their label."""
        return len(self._pending)

    @property
    def ready(self) -> bool:
        """``True`` once at least ``min_samples`` labels were learnt (predictions are returned)."""
        return self._learned >= self.config.min_samples

    def on_bar(self, bar: Bar, features: dict[str, float] | None) -> float | None:
        """Learn the labels that matured at ``bar``, then predict from ``features``.

        Parameters
        ----------
        bar : core.events.Bar
            The bar just closed, later than the previous one (the engine guarantees it); its
            close, USD, labels matured samples and is stored with the new one.
        features : dict of str to float or None
            Feature vector of this bar (e.g. from :class:`learning.features.StreamingFeatures`);
            ``None`` while features warm up: nothing is queued or predicted.

        Returns
        -------
        float or None
            Probability in [0, 1] that ``close[t + horizon_bars] / close[t] - 1 > label_threshold``;
            ``None`` without features or before ``min_samples`` labels were learnt.
        """
        index = self._index = self._index + 1
        close = bar.close
        pending = self._pending
        if pending:
            mature = index - self._horizon
            model = self._model
            threshold = self._threshold
            while pending and pending[0][0] <= mature:
                _, x, c0 = pending.popleft()
                model.learn_one(x, close / c0 - 1.0 > threshold)
                self._learned += 1
        if features is None:
            return None
        pending.append((index, features, close))
        if self._learned < self.config.min_samples:
            return None
        return self._model.predict_proba_one(features).get(True, 0.0)

    def predict(self, features: dict[str, float]) -> float | None:
        """Return the probability for ``features`` without queueing or learning anything.

        ``None`` before ``min_samples`` labels were learnt.
        """
        if self._learned < self.config.min_samples:
            return None
        return self._model.predict_proba_one(features).get(True, 0.0)

    def to_bytes(self) -> bytes:
        """Serialise the model, pending samples and counters (a pickle; no I/O is done).

        Returns
        -------
        bytes
            Payload for :meth:`from_bytes`. Only load payloads you produced: unpickling runs code.
        """
        state = {
            "format": _FORMAT,
            "model_kind": self.config.model,
            "model": self._model,
            "pending": list(self._pending),
            "index": self._index,
            "learned": self._learned,
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes, config: LearnerConfig) -> OnlineLearner:
        """Restore a learner saved by :meth:`to_bytes`.

        Parameters
        ----------
        data : bytes
            Payload from :meth:`to_bytes` (trusted source only: it is unpickled).
        config : LearnerConfig
            Configuration to run with; its ``model`` must match the saved one.

        Returns
        -------
        OnlineLearner
            A learner whose next predictions equal those the saved one would have made.

        Raises
        ------
        ValueError
            If the payload is not a learner state of a known format or was saved with another
            ``model`` kind.
        """
        try:
            state = pickle.loads(data)  # noqa: S301 - trusted payload produced by to_bytes
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad payload
            raise ValueError(f"not an OnlineLearner payload: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"not an OnlineLearner payload of format {_FORMAT}")
        if state["model_kind"] != config.model:
            raise ValueError(f"payload holds a {state['model_kind']!r} model but config.model is {config.model!r}")
        learner = cls(config)
        learner._model = state["model"]
        pending = state["pending"]
        learner._pending = deque(pending, maxlen=max(config.horizon_bars, len(pending)))
        learner._index = state["index"]
        learner._learned = state["learned"]  # a "last_ts" of older payloads is no longer needed
        return learner
