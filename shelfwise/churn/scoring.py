"""Churn scoring core: load a churn model artifact and score feature rows, one or many.

One implementation for every consumer: the evaluation and batch-score steps (this module is staged with them), the
API, the benchmark and the tests. The model's inputs are the stored features plus the BG/NBD features it derives
with the parameters in its artifact, so a stored record or a what-if payload never carries them.
Imports only numpy and xgboost (both in the Lambda bundle and the XGBoost container), never pandas or the SDK.

Artifact (`model.tar.gz`): `model.json` (the booster), `features.json` (`{"features": [...]}`, the model's input
order) and `metadata.json` (`model_version`, `feature_set_version`, `base_rate`, `cold_start_rate`,
`risk_bands`, `bgnbd` parameters, metrics).
"""

from __future__ import annotations

import json
import math
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xgboost as xgb

from shelfwise.churn import bgnbd
from shelfwise.churn.features import DERIVED_NAMES, FEATURE_SET

ARTIFACT_FILES = ("model.json", "features.json", "metadata.json")
RiskBand = Literal["low", "medium", "high"]
DEFAULT_REASONS = 3
#: The stored features the derived ones are computed from.
BGNBD_INPUTS = ("frequency", "recency_days", "first_purchase_days")


class ArtifactError(ValueError):
    """The model artifact does not follow the churn artifact contract; the message says what is wrong."""


class IncompatibleModelError(ArtifactError):
    """The model was trained on another feature-set version than the one this code computes and serves."""


class FeatureRowError(ValueError):
    """A feature row cannot be scored by the model (a feature is missing or not a finite number)."""


@dataclass(frozen=True)
class RiskBands:
    """Probability thresholds: below `low` is low risk, at or above `high` is high risk."""

    low: float
    high: float

    def band(self, probability: float) -> RiskBand:
        if probability >= self.high:
            return "high"
        if probability < self.low:
            return "low"
        return "medium"


@dataclass(frozen=True)
class ChurnModel:
    booster: xgb.Booster
    feature_names: tuple[str, ...]  # the model's input order, derived features included
    model_version: str
    feature_set_version: str
    base_rate: float
    #: Churn rate of registered customers without a purchase, measured at the validation cutoff.
    cold_start_rate: float
    risk_bands: RiskBands
    bgnbd: bgnbd.BgNbdParams | None
    metadata: Mapping[str, Any]

    @property
    def stored_features(self) -> tuple[str, ...]:
        """The inputs a record or payload must carry (the derived ones come from the artifact)."""
        needed = [n for n in self.feature_names if n not in DERIVED_NAMES]
        if self.bgnbd is not None:
            needed += [n for n in BGNBD_INPUTS if n not in needed]
        return tuple(needed)


@dataclass(frozen=True)
class Reason:
    """One feature pushing the churn score up: its value and its SHAP contribution to the logit."""

    feature: str
    value: float
    contribution: float


@dataclass(frozen=True)
class ChurnScore:
    probability: float
    risk_band: RiskBand
    reasons: tuple[Reason, ...]
    #: The logit is `bias` plus the contributions of all features (not only the reasons).
    logit: float
    bias: float


def extract_artifact(archive: Path, dest: Path) -> Path:
    """Unpack the contract's files from `model.tar.gz` into `dest` and return `dest`."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = set(tar.getnames())
            missing = [name for name in ARTIFACT_FILES if name not in names]
            if missing:
                raise ArtifactError(f"{archive.name} lacks {', '.join(missing)} (has {sorted(names)})")
            dest.mkdir(parents=True, exist_ok=True)
            # The "data" filter refuses absolute paths, links out of dest and device files.
            tar.extractall(dest, members=[tar.getmember(n) for n in ARTIFACT_FILES], filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ArtifactError(f"cannot unpack {archive}: {exc}") from exc
    return dest


def load_archive(archive: Path) -> ChurnModel:
    """Load `model.tar.gz` (unpacked beside it)."""
    return load_model(extract_artifact(archive, archive.parent / "unpacked"))


def load_model(model_dir: Path, expected_feature_set: str = FEATURE_SET.qualified_version) -> ChurnModel:
    """Load an unpacked churn artifact, checking it against the contract and the feature-set version."""
    features = _read_json(model_dir / "features.json").get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
        raise ArtifactError("features.json must hold {'features': [<name>, ...]}")
    metadata = _read_json(model_dir / "metadata.json")
    version = metadata.get("feature_set_version")
    if version != expected_feature_set:
        raise IncompatibleModelError(
            f"the model was trained on feature set {version!r}; this code computes and serves {expected_feature_set!r}"
        )
    booster = xgb.Booster()
    try:
        booster.load_model(str(model_dir / "model.json"))
    except xgb.core.XGBoostError as exc:
        raise ArtifactError(f"model.json is not an XGBoost model: {exc}") from exc
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective != "binary:logistic":
        raise ArtifactError(f"churn model objective is {objective!r}, expected 'binary:logistic'")
    if booster.num_features() != len(features):
        raise ArtifactError(
            f"model.json expects {booster.num_features()} features, features.json lists {len(features)}"
        )
    params = _bgnbd_params(metadata)
    if params is None and any(name in DERIVED_NAMES for name in features):
        raise ArtifactError("the model uses BG/NBD features but metadata.json has no 'bgnbd' parameters")
    booster.feature_names = list(features)
    # One row per request: waking a thread pool costs more than it saves, and stalls when cores are busy.
    booster.set_param({"nthread": 1})
    return ChurnModel(
        booster=booster,
        feature_names=tuple(features),
        model_version=_required(metadata, "model_version", str),
        feature_set_version=str(version),
        base_rate=_probability(metadata, "base_rate"),
        cold_start_rate=_probability(metadata, "cold_start_rate"),
        risk_bands=_risk_bands(metadata),
        bgnbd=params,
        metadata=metadata,
    )


def derived_features(
    params: bgnbd.BgNbdParams, columns: Mapping[str, np.ndarray], horizon_days: int = FEATURE_SET.label_horizon_days
) -> dict[str, np.ndarray]:
    """The BG/NBD features of rows given their stored `frequency`, `recency_days` and `first_purchase_days`; missing
    where an input is (XGBoost treats both alike)."""
    x, t_x, age = bgnbd_inputs(columns)
    known = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(age)
    derived = {name: np.full(len(x), np.nan) for name in DERIVED_NAMES}
    if known.any():
        derived["bgnbd_p_alive"][known] = bgnbd.probability_alive(params, x[known], t_x[known], age[known])
        no_purchase = bgnbd.probability_no_purchase(params, x[known], t_x[known], age[known], horizon_days)
        derived["bgnbd_p_no_purchase"][known] = no_purchase
    return derived


def bgnbd_inputs(columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(repeat purchases x, time of the last purchase t_x, age T) in days since the first purchase."""
    age = np.maximum(np.asarray(columns["first_purchase_days"], dtype=np.float64), 0.0)
    x = np.maximum(np.asarray(columns["frequency"], dtype=np.float64) - 1.0, 0.0)
    t_x = np.clip(age - np.asarray(columns["recency_days"], dtype=np.float64), 0.0, age)
    # A customer with no repeat purchase has its "last" purchase at time 0 by definition.
    return x, np.where(x > 0, t_x, 0.0), age


def model_matrix(model: ChurnModel, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Rows x model inputs (float32), derived features computed; `columns` holds the stored features by name."""
    missing = [name for name in model.stored_features if name not in columns]
    if missing:
        raise FeatureRowError(f"feature rows lack {', '.join(missing)}")
    derived = derived_features(model.bgnbd, columns) if model.bgnbd is not None else {}
    values = [derived[n] if n in derived else np.asarray(columns[n], dtype=np.float64) for n in model.feature_names]
    return np.column_stack(values).astype(np.float32)


def predict(model: ChurnModel, columns: Mapping[str, np.ndarray], contributions: bool = False) -> np.ndarray:
    """Probabilities (or per-feature contributions, last column the bias) for many rows."""
    matrix = xgb.DMatrix(model_matrix(model, columns), feature_names=list(model.feature_names))
    if contributions:
        return np.asarray(model.booster.predict(matrix, pred_contribs=True))
    return np.asarray(model.booster.predict(matrix), dtype=np.float64)


def score(model: ChurnModel, features: Mapping[str, float], max_reasons: int = DEFAULT_REASONS) -> ChurnScore:
    """Score one feature row: probability, risk band and the features that raise the risk most."""
    row = feature_row(model, features)
    matrix = model_matrix(model, {name: np.asarray([value]) for name, value in row.items()})
    contributions = model.booster.predict(
        xgb.DMatrix(matrix, feature_names=list(model.feature_names), nthread=1), pred_contribs=True
    )[0]
    logit = float(contributions.sum(dtype=np.float64))
    probability = 1.0 / (1.0 + math.exp(-logit))
    return ChurnScore(
        probability=probability,
        risk_band=model.risk_bands.band(probability),
        reasons=top_reasons(model.feature_names, matrix[0], contributions[:-1], max_reasons),
        logit=logit,
        bias=float(contributions[-1]),
    )


def cold_start_score(model: ChurnModel) -> ChurnScore:
    """The prior for a registered customer without purchase history, measured on such customers, no reasons."""
    p = model.cold_start_rate
    logit = math.log(p / (1 - p)) if 0 < p < 1 else math.copysign(math.inf, p - 0.5)
    return ChurnScore(probability=p, risk_band=model.risk_bands.band(p), reasons=(), logit=logit, bias=logit)


def feature_row(model: ChurnModel, features: Mapping[str, float]) -> dict[str, float]:
    """The stored features the model needs, each a finite number."""
    missing = [name for name in model.stored_features if name not in features]
    if missing:
        raise FeatureRowError(f"feature row lacks {', '.join(missing)}")
    values = {name: features[name] for name in model.stored_features}
    bad = [n for n, v in values.items() if not _finite_number(v)]
    if bad:
        raise FeatureRowError(f"features are not finite numbers: {', '.join(bad)}")
    return {name: float(value) for name, value in values.items()}


def top_reasons(
    names: tuple[str, ...], values: np.ndarray, contributions: np.ndarray, max_reasons: int
) -> tuple[Reason, ...]:
    """The features with the largest positive contributions, largest first."""
    order = np.argsort(-contributions, kind="stable")[:max_reasons]
    return tuple(
        Reason(feature=names[i], value=float(values[i]), contribution=float(contributions[i]))
        for i in order
        if contributions[i] > 0
    )


def _bgnbd_params(metadata: Mapping[str, Any]) -> bgnbd.BgNbdParams | None:
    raw = metadata.get("bgnbd")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(
        _finite_number(raw.get(k)) and raw[k] > 0 for k in ("r", "alpha", "a", "b")
    ):
        raise ArtifactError(f"metadata.json: 'bgnbd' must hold positive r, alpha, a, b; got {raw!r}")
    return bgnbd.BgNbdParams(r=float(raw["r"]), alpha=float(raw["alpha"]), a=float(raw["a"]), b=float(raw["b"]))


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path.name} must hold a JSON object")
    return data


def _required(metadata: Mapping[str, Any], key: str, kind: type) -> Any:
    value = metadata.get(key)
    if not isinstance(value, kind):
        raise ArtifactError(f"metadata.json: {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def _probability(metadata: Mapping[str, Any], key: str) -> float:
    value = metadata.get(key)
    if not _finite_number(value) or not 0 <= float(value) <= 1:  # type: ignore[arg-type]
        raise ArtifactError(f"metadata.json: {key!r} must be a probability, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _risk_bands(metadata: Mapping[str, Any]) -> RiskBands:
    bands = metadata.get("risk_bands")
    if not isinstance(bands, dict):
        raise ArtifactError(f"metadata.json: 'risk_bands' must be {{'low': p, 'high': p}}, got {bands!r}")
    low, high = _probability(bands, "low"), _probability(bands, "high")
    if low > high:
        raise ArtifactError(f"metadata.json: risk_bands low {low} is above high {high}")
    return RiskBands(low=low, high=high)
