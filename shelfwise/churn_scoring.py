"""Churn scoring core: load a churn model artifact and score one customer's feature row.

Shared by the churn Lambda, the benchmark and the tests. Imports only numpy and xgboost (both in the Lambda bundle),
never pandas or the SageMaker SDK, so that a cold start stays small.
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

ARTIFACT_FILES = ("model.json", "features.json", "metadata.json")
RiskBand = Literal["low", "medium", "high"]
DEFAULT_REASONS = 3


class ArtifactError(ValueError):
    """The model artifact does not follow the churn artifact contract; the message says what is wrong."""


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
    feature_names: tuple[str, ...]
    model_version: str
    base_rate: float
    risk_bands: RiskBands
    metadata: Mapping[str, Any]


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


def load_model(model_dir: Path) -> ChurnModel:
    """Load an unpacked churn artifact, checking it against the contract."""
    features = _read_json(model_dir / "features.json").get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
        raise ArtifactError("features.json must hold {'features': [<name>, ...]}")
    metadata = _read_json(model_dir / "metadata.json")
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
    booster.feature_names = list(features)
    # One row per request: waking a thread pool costs more than it saves, and stalls when cores are busy.
    booster.set_param({"nthread": 1})
    return ChurnModel(
        booster=booster,
        feature_names=tuple(features),
        model_version=_required(metadata, "model_version", str),
        base_rate=_probability(metadata, "base_rate"),
        risk_bands=_risk_bands(metadata),
        metadata=metadata,
    )


def score(model: ChurnModel, features: Mapping[str, float], max_reasons: int = DEFAULT_REASONS) -> ChurnScore:
    """Score one feature row: probability, risk band and the features that raise the risk most."""
    row = feature_row(model, features)
    contributions = model.booster.predict(
        xgb.DMatrix(row, feature_names=list(model.feature_names), nthread=1), pred_contribs=True
    )[0]
    logit = float(contributions.sum(dtype=np.float64))
    probability = 1.0 / (1.0 + math.exp(-logit))
    return ChurnScore(
        probability=probability,
        risk_band=model.risk_bands.band(probability),
        reasons=top_reasons(model.feature_names, row[0], contributions[:-1], max_reasons),
        logit=logit,
        bias=float(contributions[-1]),
    )


def cold_start_score(model: ChurnModel) -> ChurnScore:
    """The population prior for a customer without purchase history: the training base rate, no reasons."""
    p = model.base_rate
    logit = math.log(p / (1 - p)) if 0 < p < 1 else math.copysign(math.inf, p - 0.5)
    return ChurnScore(probability=p, risk_band=model.risk_bands.band(p), reasons=(), logit=logit, bias=logit)


def feature_row(model: ChurnModel, features: Mapping[str, float]) -> np.ndarray:
    """The features in the model's input order as a 1 x n float32 array; every feature must be a finite number."""
    missing = [name for name in model.feature_names if name not in features]
    if missing:
        raise FeatureRowError(f"feature row lacks {', '.join(missing)}")
    values = [features[name] for name in model.feature_names]
    bad = [n for n, v in zip(model.feature_names, values, strict=True) if not _finite_number(v)]
    if bad:
        raise FeatureRowError(f"features are not finite numbers: {', '.join(bad)}")
    return np.asarray([values], dtype=np.float32)


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
