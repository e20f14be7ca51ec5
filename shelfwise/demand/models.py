"""The forecasters: DeepAR and the classic baselines, each giving sample paths of the next `horizon` days.

Every model returns the same thing, `(series, paths, horizon)` float32 samples of daily demand, so evaluation,
ensembles and inventory decisions treat them alike. AutoETS's paths are simulated from its fitted state space model,
because inventory needs the distribution of demand summed over days, which daily quantiles cannot give; seasonal
naive is the point forecast it is in the M5.

DeepAR follows GluonTS's estimator/predictor split: `DeepARSettings.estimator(...)` is trained into a predictor that
`deepar_paths` queries; `shelfwise.demand.model_store` serialises it. `train_deepar` trains several networks from
different seeds and pools their paths (`DeepAREnsemble`): one network's level at the sums moves by tens of percent
from one training run to the next, and the mean of several moves less.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shelfwise.demand.calendar import ALL_COVARIATES, COVARIATES, calendar_covariates
from shelfwise.demand.series import STATIC_ATTRIBUTES, DemandPanel

if TYPE_CHECKING:
    from gluonts.torch.model.deepar import DeepAREstimator
    from gluonts.torch.model.predictor import PyTorchPredictor
    from gluonts.transform import InstanceSampler

HORIZON = 28
FREQ = "D"
SEASON = 7
#: Lags of up to a quarter, plus the same weekday a year earlier.
LAGS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 15, 20, 21, 22, 27, 28, 29, 56, 84, 363, 364, 365)


def _nan_to_zero(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, 0.0)


def seasonal_naive_paths(panel: DemandPanel, horizon: int = HORIZON, n_paths: int = 200) -> np.ndarray:
    """Weekly seasonal naive, the M5's benchmark: every day repeats the same weekday of the last observed week.

    A point forecast, given as `n_paths` identical paths (as GluonTS's `SeasonalNaivePredictor` does), so its
    quantile loss is its absolute error. Simulating it with bootstrapped residuals floored at zero would drift
    upwards on sparse series and flatter every model compared with it.
    """
    week = _nan_to_zero(_last_observed_week(panel.target)).astype(np.float32)
    days = week[:, np.arange(horizon) % SEASON]
    return np.repeat(days[:, None, :], n_paths, axis=1)


def _last_observed_week(target: np.ndarray) -> np.ndarray:
    """The last 7 days, each day's NaN (censored) replaced by the same weekday a week earlier where known."""
    week = target[:, -SEASON:].copy()
    for back in range(2, 9):
        earlier = target[:, -SEASON * back : target.shape[1] - SEASON * (back - 1)]
        if earlier.shape[1] < SEASON:
            break
        week = np.where(np.isfinite(week), week, earlier)
    return week


def autoets_paths(
    panel: DemandPanel, horizon: int = HORIZON, n_paths: int = 200, seed: int = 0, history_days: int = 364
) -> np.ndarray:
    """AutoETS (statsforecast) fitted per series on its last `history_days`, paths simulated from the fitted model.

    Censored days are filled by linear interpolation first (ETS needs a complete series); paths are floored at 0.
    """
    from statsforecast.models import AutoETS

    paths = np.zeros((panel.target.shape[0], n_paths, horizon), dtype=np.float32)
    for i, series in enumerate(panel.target):
        y = series[max(int(panel.start_index[i]), series.size - history_days) :]
        y = pd.Series(y).interpolate(limit_direction="both").fillna(0.0).to_numpy(dtype=np.float64)
        if y.size < 2 * SEASON or not np.any(y):
            continue
        model = AutoETS(season_length=SEASON)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(y)
            simulated = model.simulate(h=horizon, n_paths=n_paths, seed=seed + i)
        paths[i] = np.maximum(simulated, 0.0)
    return paths


def npts_paths(panel: DemandPanel, horizon: int = HORIZON, n_paths: int = 200, seed: int = 0) -> np.ndarray:
    """GluonTS's non-parametric time series forecaster (seasonal, exponential kernel) on each series' history."""
    from gluonts.model.npts import NPTSPredictor

    np.random.seed(seed)  # NPTS samples with numpy's global generator
    predictor = NPTSPredictor(prediction_length=horizon, use_seasonal_model=True)
    entries = [
        {"start": pd.Period(panel.start + dt.timedelta(days=int(s)), FREQ), "target": _nan_to_zero(t[int(s) :])}
        for t, s in zip(panel.target, _starts(panel), strict=True)
    ]
    forecasts = predictor.predict(entries, num_samples=n_paths)
    return np.stack([f.samples for f in forecasts]).astype(np.float32)


def _starts(panel: DemandPanel) -> np.ndarray:
    """Series start, kept at least a week before the end so that every model sees some history."""
    return np.asarray(np.minimum(panel.start_index, panel.n_days - SEASON).clip(min=0))


@dataclass(frozen=True)
class DeepARSettings:
    """DeepAR's hyper-parameters (GluonTS names); the defaults suit the default world on 2 CPU cores."""

    context_length: int = 56
    num_layers: int = 2
    hidden_size: int = 40
    epochs: int = 20
    num_batches_per_epoch: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    #: Training windows added per series and pass whose forecast days cover a retail event (`event_days`), on top of
    #: the one uniform window: a day like Christmas is one in 365 of the history and too rare to learn otherwise.
    event_windows: float = 1.0
    #: Networks trained from seeds `seed`, `seed + 1`, ... whose paths are pooled: on the default world one
    #: network's bias at the total ranged from -17% to +16% between seeds and settings, so one is a lottery.
    networks: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    def estimator(
        self, cardinality: list[int], work_dir: Path, horizon: int = HORIZON, events_from_end: tuple[int, ...] = ()
    ) -> DeepAREstimator:
        from gluonts.torch.distributions import NegativeBinomialOutput
        from gluonts.torch.model.deepar import DeepAREstimator

        return DeepAREstimator(
            freq=FREQ,
            prediction_length=horizon,
            context_length=self.context_length,
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
            lr=self.lr,
            batch_size=self.batch_size,
            num_batches_per_epoch=self.num_batches_per_epoch,
            # Units are counts, often zero: a negative binomial, not the default Student's t.
            distr_output=NegativeBinomialOutput(),
            lags_seq=list(LAGS),
            train_sampler=event_sampler(events_from_end, self.event_windows, horizon),
            num_feat_dynamic_real=len(ALL_COVARIATES),
            num_feat_static_cat=len(STATIC_ATTRIBUTES),
            cardinality=cardinality,
            trainer_kwargs={
                "max_epochs": self.epochs,
                "default_root_dir": str(work_dir),
                "logger": False,
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "accelerator": "cpu",
                "deterministic": True,
            },
            **self.extra,
        )


@dataclass(frozen=True)
class StaticCodes:
    """Integer codes of the static attributes, fixed at training so that prediction uses the same ones."""

    values: dict[str, tuple[str, ...]]

    @classmethod
    def fit(cls, keys: pd.DataFrame) -> StaticCodes:
        return cls({name: tuple(sorted(keys[name].astype(str).unique())) for name in STATIC_ATTRIBUTES})

    @property
    def cardinality(self) -> list[int]:
        # One more than the known values: the code of a value first seen after training.
        return [len(self.values[name]) + 1 for name in STATIC_ATTRIBUTES]

    def encode(self, keys: pd.DataFrame) -> np.ndarray:
        columns = []
        for name in STATIC_ATTRIBUTES:
            known = {value: code for code, value in enumerate(self.values[name])}
            unknown = len(known)
            columns.append([known.get(str(v), unknown) for v in keys[name]])
        return np.array(columns, dtype=np.int64).T


def gluonts_entries(panel: DemandPanel, codes: StaticCodes, future_days: int) -> Iterator[dict[str, Any]]:
    """The panel as GluonTS entries; dynamic features run `future_days` past the target (0 for training)."""
    n_days = panel.n_days + future_days
    shared = calendar_covariates(panel.start, n_days)
    regions = panel.keys["region"].astype(str) if "region" in panel.keys else pd.Series("", index=panel.keys.index)
    # One matrix per region, not per series: each entry's features are a view of its region's.
    covariates = {
        region: np.vstack([shared, panel.holidays.covariates(region, panel.start, n_days)]) for region in set(regions)
    }
    static = codes.encode(panel.keys)
    target = panel.target  # computed once: each entry is a view of it
    for i, (start, region) in enumerate(zip(_starts(panel), regions, strict=True)):
        yield {
            "item_id": i,
            "start": pd.Period(panel.start + dt.timedelta(days=int(start)), FREQ),
            "target": target[i, start:],
            "feat_static_cat": static[i],
            "feat_dynamic_real": covariates[region][:, start:],
        }


def event_days(start: dt.date, n_days: int) -> np.ndarray:
    """Indices of the days of `n_days` from `start` on a short retail event (Black Friday week, Christmas Eve to
    New Year's Day, Easter): the days the event windows of training cover. The long ramps (the Christmas run-up,
    January) are left to uniform sampling, which meets them often."""
    covariates = calendar_covariates(start, n_days)
    short = [i for i, name in enumerate(COVARIATES) if name not in ("christmas_run_up", "january")]
    return np.flatnonzero(covariates[short].any(axis=0))


def event_sampler(events_from_end: tuple[int, ...], rate: float, horizon: int = HORIZON) -> InstanceSampler:
    """GluonTS's uniform training sampler plus, per series and pass, `rate` windows on average whose forecast days
    cover an event day. Events are given as days before the end of the training series, which all end together."""
    from gluonts.transform import ExpectedNumInstanceSampler

    class EventWindowSampler(ExpectedNumInstanceSampler):  # type: ignore[misc]  # GluonTS is untyped
        events_from_end: tuple[int, ...]
        rate: float

        def __call__(self, ts: np.ndarray) -> np.ndarray:
            uniform = super().__call__(ts)
            first, last = self._get_bounds(ts)
            if last < first:  # shorter than a forecast window: nothing to draw, as the uniform sampler does
                return np.asarray(uniform)
            events = ts.shape[self.axis] - np.asarray(self.events_from_end, dtype=int)
            events = events[(events >= first) & (events < last + horizon)]
            count = np.random.poisson(self.rate) if events.size else 0
            if count == 0:
                return np.asarray(uniform)
            # A forecast window starting up to `horizon - 1` days before the event day has it among its days.
            split = np.random.choice(events, count) - np.random.randint(0, horizon, count)
            return np.concatenate([np.asarray(uniform), np.clip(split, first, last)])

    return EventWindowSampler(num_instances=1.0, min_future=horizon, events_from_end=events_from_end, rate=rate)


@dataclass(frozen=True)
class DeepAREnsemble:
    """DeepAR networks trained alike from different seeds; a forecast pools their sample paths (a mixture)."""

    members: tuple[PyTorchPredictor, ...]

    @property
    def prediction_length(self) -> int:
        return int(self.members[0].prediction_length)


def train_deepar(panel: DemandPanel, settings: DeepARSettings, work_dir: Path) -> tuple[DeepAREnsemble, StaticCodes]:
    """Train `settings.networks` DeepAR networks on every series of the panel; NaN (censored) days are masked out of
    the loss by GluonTS."""
    import lightning

    if settings.networks < 1:
        raise ValueError(f"networks must be at least 1, got {settings.networks}")
    codes = StaticCodes.fit(panel.keys)
    events_from_end = tuple(int(d) for d in panel.n_days - event_days(panel.start, panel.n_days))
    entries = list(gluonts_entries(panel, codes, 0))
    members = []
    for number in range(settings.networks):
        lightning.seed_everything(settings.seed + number, workers=True, verbose=False)
        estimator = settings.estimator(
            codes.cardinality, work_dir / f"network-{number}", events_from_end=events_from_end
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            members.append(estimator.train(training_data=entries, cache_data=True))
    return DeepAREnsemble(tuple(members)), codes


def deepar_paths(
    predictor: DeepAREnsemble, codes: StaticCodes, panel: DemandPanel, n_paths: int = 200, seed: int = 0
) -> np.ndarray:
    """Sample paths of the `horizon` days after the panel's end, `n_paths` shared out among the networks."""
    import torch

    horizon = predictor.prediction_length
    entries = list(gluonts_entries(panel, codes, horizon))
    shares = [len(part) for part in np.array_split(np.arange(n_paths), len(predictor.members))]
    pooled: list[np.ndarray] = []
    for number, (member, share) in enumerate(zip(predictor.members, shares, strict=True)):
        if share == 0:
            continue
        torch.manual_seed(seed + number)
        forecasts = member.predict(entries, num_samples=share)
        pooled.append(np.stack([f.samples for f in forecasts]))
    paths: np.ndarray = np.concatenate(pooled, axis=1).astype(np.float32)
    return paths


def vincentize(*paths: np.ndarray) -> np.ndarray:
    """The mean of the models' quantiles (Vincentization), as sorted samples per series and day."""
    return np.asarray(np.mean([np.sort(p, axis=1) for p in paths], axis=0))


def forecast_paths(
    forecaster: str,
    panel: DemandPanel,
    deepar: tuple[DeepAREnsemble, StaticCodes] | None,
    n_paths: int = 200,
    seed: int = 0,
) -> np.ndarray:
    """Sample paths of the `HORIZON` days after the panel's end from one of the candidates
    (`shelfwise.demand.backtest.CANDIDATES`); `deepar` is the trained predictor the DeepAR ones need."""

    def with_deepar() -> np.ndarray:
        if deepar is None:
            raise ValueError(f"{forecaster} needs a trained DeepAR predictor")
        return deepar_paths(deepar[0], deepar[1], panel, n_paths, seed)

    if forecaster == "deepar":
        return with_deepar()
    if forecaster == "autoets":
        return autoets_paths(panel, n_paths=n_paths, seed=seed)
    if forecaster == "seasonal_naive":
        return seasonal_naive_paths(panel, n_paths=n_paths)
    if forecaster == "npts":
        return npts_paths(panel, n_paths=n_paths, seed=seed)
    if forecaster == "deepar+autoets":
        return vincentize(with_deepar(), autoets_paths(panel, n_paths=n_paths, seed=seed))
    raise ValueError(f"unknown forecaster {forecaster!r}")
