"""learning.learner: no look-ahead, learning, persistence, determinism, min_samples.

Duplicate and out-of-order bars are the engine's to drop (core.bars gate); the learner no longer
checks them, so there is no component-level duplicate test here."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from core.events import Bar
from learning.features import StreamingFeatures
from learning.learner import LearnerConfig, OnlineLearner

HOUR = 3_600_000_000_000
MODELS = ["logistic", "hoeffding_tree"]


def walk_bars(n: int, seed: int, start_close: float = 100.0, start_index: int = 0) -> list[Bar]:
    rng = np.random.default_rng(seed)
    closes = start_close * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    volumes = rng.integers(1_000, 50_000, n).astype(float)
    return [
        Bar("X", (start_index + i) * HOUR, (start_index + i + 1) * HOUR, c, c * 1.002, c * 0.998, c, v)
        for i, (c, v) in enumerate(zip(closes.tolist(), volumes.tolist()))
    ]


def run(learner: OnlineLearner, bars: list[Bar], features: StreamingFeatures | None = None) -> list[float | None]:
    features = features if features is not None else StreamingFeatures()
    return [learner.on_bar(b, features.update(b)) for b in bars]


class Recorder:
    """Stands in for the River model and records every learn_one call."""

    def __init__(self, clock: list[int]) -> None:
        self.clock = clock
        self.learned: list[tuple[int, dict, bool]] = []

    def learn_one(self, x, y):
        self.learned.append((self.clock[0], x, y))

    def predict_proba_one(self, x):
        return {False: 0.5, True: 0.5}


@pytest.mark.parametrize("model", MODELS)
def test_no_look_ahead_future_bars_do_not_change_past_predictions(model):
    cfg = LearnerConfig(model=model, horizon_bars=5, min_samples=30)
    t = 220
    base = walk_bars(400, seed=1)
    other = base[: t + 1] + walk_bars(400 - t - 1, seed=99, start_close=57.0, start_index=t + 1)
    first = run(OnlineLearner(cfg), base)
    second = run(OnlineLearner(cfg), other)
    assert first[: t + 1] == second[: t + 1]
    assert sum(p is not None for p in first[: t + 1]) > 100
    assert first[t + 1 :] != second[t + 1 :]  # the streams really differ afterwards


def test_labels_are_learnt_only_once_known_and_are_correct():
    cfg = LearnerConfig(horizon_bars=3, label_threshold=0.001, min_samples=0)
    bars = walk_bars(50, seed=3)
    clock = [0]
    learner = OnlineLearner(cfg)
    rec = learner._model = Recorder(clock)  # type: ignore[assignment]
    for i, b in enumerate(bars):
        clock[0] = i
        learner.on_bar(b, {"i": float(i)})
    assert len(rec.learned) == len(bars) - 3 == learner.samples_learned
    assert learner.pending == 3
    for learnt_at, x, y in rec.learned:
        i = int(x["i"])
        assert learnt_at == i + 3  # exactly when the label matured, never earlier
        assert y == (bars[i + 3].close / bars[i].close - 1.0 > 0.001)


def test_bars_without_features_still_count_towards_the_horizon():
    clock = [0]
    learner = OnlineLearner(LearnerConfig(horizon_bars=2, min_samples=0))
    rec = learner._model = Recorder(clock)  # type: ignore[assignment]
    bars = walk_bars(4, seed=4)
    for i, (b, x) in enumerate(zip(bars, [{"a": 1.0}, None, None, None])):
        clock[0] = i
        learner.on_bar(b, x)
    assert [(at, y) for at, _, y in rec.learned] == [(2, bars[2].close > bars[0].close)]


@pytest.mark.parametrize("model", MODELS)
def test_learns_a_deterministic_label(model):
    """Label = (signal > 0) exactly: the learner must get well above chance."""
    rng = np.random.default_rng(5)
    n = 2500
    signal = rng.standard_normal(n)
    noise = rng.standard_normal((n, 2))
    close = 100.0
    cfg = LearnerConfig(model=model, horizon_bars=1, min_samples=100)
    learner = OnlineLearner(cfg)
    hits = total = 0
    for i in range(n):
        bar = Bar("X", i * HOUR, (i + 1) * HOUR, close, close, close, close, 1.0)
        x = {"signal": float(signal[i]), "noise_a": float(noise[i, 0]), "noise_b": float(noise[i, 1])}
        p = learner.on_bar(bar, x)
        if p is not None and i >= 1000:
            hits += (p > 0.5) == (signal[i] > 0)
            total += 1
        close *= 1.01 if signal[i] > 0 else 0.99  # next close reveals the label
    assert total == n - 1000
    assert hits / total > 0.8


@pytest.mark.parametrize("model", MODELS)
def test_save_load_round_trip_gives_identical_predictions(model):
    cfg = LearnerConfig(model=model, horizon_bars=5, min_samples=50)
    bars = walk_bars(600, seed=6)
    features = StreamingFeatures()
    learner = OnlineLearner(cfg)
    run(learner, bars[:400], features)
    data = learner.to_bytes()
    assert isinstance(data, bytes)
    restored = OnlineLearner.from_bytes(data, cfg)
    assert restored.samples_learned == learner.samples_learned and restored.pending == learner.pending
    xs = [features.update(b) for b in bars[400:]]
    a = [learner.on_bar(b, x) for b, x in zip(bars[400:], xs)]
    b = [restored.on_bar(b_, x) for b_, x in zip(bars[400:], xs)]
    assert a == b and all(p is not None for p in a)
    assert restored.samples_learned == learner.samples_learned


def test_payload_saved_with_the_former_last_ts_field_still_loads():
    """Learners saved before the engine became the one bar gate carry a "last_ts"; it is ignored."""
    import pickle

    cfg = LearnerConfig(min_samples=0, horizon_bars=2)
    learner = OnlineLearner(cfg)
    bars = walk_bars(30, seed=13)
    for b in bars[:20]:
        learner.on_bar(b, {"a": b.close})
    state = pickle.loads(learner.to_bytes())
    state["last_ts"] = bars[19].ts_event
    restored = OnlineLearner.from_bytes(pickle.dumps(state), cfg)
    assert [restored.on_bar(b, {"a": b.close}) for b in bars[20:]] == [learner.on_bar(b, {"a": b.close}) for b in bars[20:]]


def test_from_bytes_rejects_other_model_kind_and_garbage():
    data = OnlineLearner(LearnerConfig(model="logistic")).to_bytes()
    with pytest.raises(ValueError, match="model"):
        OnlineLearner.from_bytes(data, LearnerConfig(model="hoeffding_tree"))
    with pytest.raises(ValueError, match="payload"):
        OnlineLearner.from_bytes(b"not a pickle", LearnerConfig())


@pytest.mark.parametrize("model", MODELS)
def test_determinism_same_seed_same_stream(model):
    cfg = LearnerConfig(model=model, min_samples=20, seed=7)
    bars = walk_bars(500, seed=8)
    a, b = run(OnlineLearner(cfg), bars), run(OnlineLearner(cfg), bars)
    assert a == b and any(p is not None for p in a)


@pytest.mark.parametrize("model", MODELS)
def test_no_prediction_before_min_samples(model):
    cfg = LearnerConfig(model=model, horizon_bars=5, min_samples=40)
    learner = OnlineLearner(cfg)
    features = StreamingFeatures()
    seen_first = False
    for b in walk_bars(200, seed=9):
        p = learner.on_bar(b, features.update(b))
        if learner.samples_learned < 40:
            assert p is None and not learner.ready
        elif features.ready:
            assert p is not None and 0.0 <= p <= 1.0
            seen_first = True
    assert seen_first
    assert learner.samples_learned == 200 - (features.config.warmup_bars - 1) - 5


def test_predict_does_not_learn_or_queue():
    learner = OnlineLearner(LearnerConfig(min_samples=0, horizon_bars=2))
    bars = walk_bars(10, seed=10)
    for b in bars:
        learner.on_bar(b, {"a": b.close})
    before = (learner.samples_learned, learner.pending, learner.to_bytes())
    assert learner.predict({"a": 1.0}) is not None
    assert (learner.samples_learned, learner.pending, learner.to_bytes()) == before


def test_features_are_not_mutated():
    learner = OnlineLearner(LearnerConfig(min_samples=0, horizon_bars=1))
    xs = [{"a": float(i), "b": 1.0} for i in range(20)]
    copies = [dict(x) for x in xs]
    for b, x in zip(walk_bars(20, seed=12), xs):
        learner.on_bar(b, x)
    assert xs == copies


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"model": "svm"}, "model"),
        ({"horizon_bars": 0}, "horizon_bars"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"l2": -1.0}, "l2"),
        ({"min_samples": -1}, "min_samples"),
        ({"label_threshold": float("nan")}, "label_threshold"),
        ({"seed": -1}, "seed"),
        ({"lr": 0.1}, "lr"),
    ],
)
def test_config_validation_names_the_key(kwargs, key):
    with pytest.raises(ValidationError, match=key):
        LearnerConfig(**kwargs)
