"""The scoring core: the artifact contract is checked on load, and scores, reasons and bands are right."""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from shelfwise.bench.serving import synthetic_feature_rows, train_churn_booster, write_churn_artifact
from shelfwise.churn_features import FEATURE_NAMES
from shelfwise.churn_scoring import (
    ArtifactError,
    FeatureRowError,
    RiskBands,
    cold_start_score,
    extract_artifact,
    load_model,
    score,
)


@pytest.fixture(scope="module")
def trained() -> tuple[xgb.Booster, np.ndarray]:
    rows, labels = synthetic_feature_rows(400, seed=3)
    return train_churn_booster(rows, labels, trees=15, depth=3, seed=3), rows


@pytest.fixture
def model_dir(tmp_path: Path, trained: tuple[xgb.Booster, np.ndarray]) -> Path:
    archive = write_churn_artifact(trained[0], tmp_path / "model.tar.gz", "v-unit", base_rate=0.2)
    return extract_artifact(archive, tmp_path / "model")


def as_features(row: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, map(float, row), strict=True))


def test_score_matches_xgboost_and_reasons_are_the_top_positive_contributions(
    model_dir: Path, trained: tuple[xgb.Booster, np.ndarray]
) -> None:
    model = load_model(model_dir)
    booster, rows = trained
    for row in rows[:20]:
        result = score(model, as_features(row), max_reasons=4)
        assert result.probability == pytest.approx(float(booster.inplace_predict(row[None, :])[0]), abs=1e-6)
        assert result.logit == pytest.approx(math.log(result.probability / (1 - result.probability)))
        contributions = [r.contribution for r in result.reasons]
        assert contributions == sorted(contributions, reverse=True)
        assert all(c > 0 for c in contributions)
        assert len(result.reasons) <= 4


def test_cold_start_is_the_base_rate_without_reasons(model_dir: Path) -> None:
    result = cold_start_score(load_model(model_dir))
    assert (result.probability, result.reasons, result.risk_band) == (0.2, (), "low")


@pytest.mark.parametrize(
    ("p", "band"), [(0.0, "low"), (0.2999, "low"), (0.3, "medium"), (0.5999, "medium"), (0.6, "high")]
)
def test_risk_band_boundaries(p: float, band: str) -> None:
    assert RiskBands(low=0.3, high=0.6).band(p) == band


def test_feature_row_must_be_complete_and_finite(model_dir: Path, trained: tuple[xgb.Booster, np.ndarray]) -> None:
    model = load_model(model_dir)
    features = as_features(trained[1][0])
    with pytest.raises(FeatureRowError, match="lacks online_share"):
        score(model, {k: v for k, v in features.items() if k != "online_share"})
    with pytest.raises(FeatureRowError, match="monetary"):
        score(model, features | {"monetary": math.inf})


def test_archive_without_a_contract_file_is_rejected_naming_it(tmp_path: Path, model_dir: Path) -> None:
    archive = tmp_path / "partial.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model_dir / "model.json", arcname="model.json")
        tar.add(model_dir / "features.json", arcname="features.json")
    with pytest.raises(ArtifactError, match=r"lacks metadata\.json"):
        extract_artifact(archive, tmp_path / "out")


def test_archive_that_is_not_a_tarball_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"not a tarball")
    with pytest.raises(ArtifactError, match="cannot unpack"):
        extract_artifact(archive, tmp_path / "out")


def test_model_with_another_objective_is_rejected(model_dir: Path, trained: tuple[xgb.Booster, np.ndarray]) -> None:
    rows = trained[1]
    regression = xgb.train(
        {"objective": "reg:squarederror", "nthread": 1},
        xgb.DMatrix(rows, rows[:, 0], feature_names=list(FEATURE_NAMES)),
        2,
    )
    regression.save_model(str(model_dir / "model.json"))
    with pytest.raises(ArtifactError, match="objective is 'reg:squarederror'"):
        load_model(model_dir)


def test_feature_list_must_match_the_model(model_dir: Path) -> None:
    (model_dir / "features.json").write_text(json.dumps({"features": list(FEATURE_NAMES[:-1])}))
    with pytest.raises(ArtifactError, match=r"expects 19 features, features\.json lists 18"):
        load_model(model_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base_rate": 1.5}, "base_rate"),
        ({"model_version": None}, "model_version"),
        ({"risk_bands": {"low": 0.7, "high": 0.6}}, "above high"),
        ({"risk_bands": "high"}, "risk_bands"),
    ],
)
def test_bad_metadata_is_rejected_naming_the_key(model_dir: Path, change: dict[str, object], message: str) -> None:
    path = model_dir / "metadata.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    with pytest.raises(ArtifactError, match=message):
        load_model(model_dir)
