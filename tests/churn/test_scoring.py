"""The scoring core: the artifact contract is checked on load, and scores, reasons and bands are right."""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from shelfwise.bench.serving import (
    BGNBD,
    MODEL_FEATURES,
    model_inputs,
    synthetic_feature_rows,
    train_churn_booster,
    write_churn_artifact,
)
from shelfwise.churn import bgnbd
from shelfwise.churn.features import FEATURE_NAMES, FEATURE_SET
from shelfwise.churn.scoring import (
    ArtifactError,
    FeatureRowError,
    IncompatibleModelError,
    RiskBands,
    cold_start_score,
    derived_features,
    extract_artifact,
    load_model,
    predict,
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
        expected = float(booster.inplace_predict(model_inputs(row[None, :]))[0])
        assert result.probability == pytest.approx(expected, abs=1e-6)
        assert result.logit == pytest.approx(math.log(result.probability / (1 - result.probability)))
        contributions = [r.contribution for r in result.reasons]
        assert contributions == sorted(contributions, reverse=True)
        assert all(c > 0 for c in contributions)
        assert len(result.reasons) <= 4


def test_many_rows_score_as_each_row_does(model_dir: Path, trained: tuple[xgb.Booster, np.ndarray]) -> None:
    model = load_model(model_dir)
    rows = trained[1][:50]
    columns = {name: rows[:, i] for i, name in enumerate(FEATURE_NAMES)}
    batch = predict(model, columns)
    single = [score(model, as_features(row)).probability for row in rows]
    np.testing.assert_allclose(batch, single, rtol=1e-5)


def test_bgnbd_features_are_derived_with_the_artifact_parameters(model_dir: Path) -> None:
    model = load_model(model_dir)
    assert model.bgnbd == bgnbd.BgNbdParams(**BGNBD)
    assert model.feature_names == MODEL_FEATURES
    # A customer who bought 5 times, last 10 days ago, first 200 days ago: x=4, t_x=190, T=200.
    derived = derived_features(model.bgnbd, {"frequency": np.array([5.0]), "recency_days": np.array([10.0]),
                                             "first_purchase_days": np.array([200.0])})  # fmt: skip
    params = bgnbd.BgNbdParams(**BGNBD)
    assert derived["bgnbd_p_alive"][0] == pytest.approx(bgnbd.probability_alive(params, [4], [190], [200])[0])
    horizon = FEATURE_SET.label_horizon_days
    no_purchase = bgnbd.probability_no_purchase(params, [4], [190], [200], horizon)[0]
    assert derived["bgnbd_p_no_purchase"][0] == pytest.approx(no_purchase)


def test_cold_start_is_the_measured_prior_without_reasons(model_dir: Path) -> None:
    result = cold_start_score(load_model(model_dir))
    assert (result.probability, result.reasons, result.risk_band) == (pytest.approx(0.3), (), "medium")


def test_a_model_of_another_feature_set_version_is_refused_naming_both(model_dir: Path) -> None:
    path = model_dir / "metadata.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"feature_set_version": "churn/1"}))
    with pytest.raises(IncompatibleModelError, match=f"'churn/1'.*'{FEATURE_SET.qualified_version}'"):
        load_model(model_dir)


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
        xgb.DMatrix(model_inputs(rows), rows[:, 0], feature_names=list(MODEL_FEATURES)),
        2,
    )
    regression.save_model(str(model_dir / "model.json"))
    with pytest.raises(ArtifactError, match="objective is 'reg:squarederror'"):
        load_model(model_dir)


def test_feature_list_must_match_the_model(model_dir: Path) -> None:
    (model_dir / "features.json").write_text(json.dumps({"features": list(MODEL_FEATURES[:-1])}))
    expected = len(MODEL_FEATURES)
    with pytest.raises(ArtifactError, match=rf"expects {expected} features, features\.json lists {expected - 1}"):
        load_model(model_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base_rate": 1.5}, "base_rate"),
        ({"cold_start_rate": None}, "cold_start_rate"),
        ({"bgnbd": {"r": -1, "alpha": 1, "a": 1, "b": 1}}, "bgnbd"),
        ({"bgnbd": None}, "BG/NBD features but metadata.json has no 'bgnbd'"),
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
