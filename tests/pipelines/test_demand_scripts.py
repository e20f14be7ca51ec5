"""The demand steps end to end through the container contract, run from the pipeline's own source tarball: the
panel and its quarantine, DeepAR trained twice, every candidate scored and the gate's figure (which a DeepAR trained on
shuffled targets fails), the packaged selection, and the batch forecast that verifies what it is given."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shelfwise.demand import model_store
from shelfwise.demand.keys import FEATURE_SET_VERSION
from shelfwise.domains import pipeline
from shelfwise.pipelines.code import build_source_tarball
from shelfwise.pipelines.spec import AtLeast

pytestmark = pytest.mark.slow

AS_OF = dt.date(2024, 8, 1)
DAYS = 196  # 28 weeks: 20 of history before the two windows of 4
STORES, SKUS = ("S1", "S2", "S3"), ("A", "B", "C", "D")
QUICK = ("--epochs", "4", "--batches_per_epoch", "50")  # enough for DeepAR to learn the weekly rhythm


def demand_rows(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily sales with a strong weekly rhythm (weekends several times weekdays), Poisson around it."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(AS_OF - dt.timedelta(days=DAYS), periods=DAYS, freq="D")
    weekend = dates.dayofweek >= 5
    rows, static = [], []
    for s, store in enumerate(STORES):
        for k, sku in enumerate(SKUS):
            level = 2.0 + 2 * s + k
            mean = np.where(weekend, 6 * level, level)
            rows.append(
                pd.DataFrame(
                    {
                        "store_id": store,
                        "sku": sku,
                        "date": dates.date,
                        "units": rng.poisson(mean).astype(float),
                        "censored": False,
                        "promo": False,
                        "price_ratio": 1.0,
                        "feature_set_version": FEATURE_SET_VERSION,
                    }
                )
            )
            static.append(
                {
                    "store_id": store,
                    "sku": sku,
                    "region": "north" if s < 2 else "south",
                    "format": "mall",
                    "department": "dept-1",
                    "category": f"cat-{k % 2}",
                    "brand": "b",
                    "price_tier": "mid",
                    "launch_date": dates[0].date(),
                    "feature_set_version": FEATURE_SET_VERSION,
                }
            )
    return pd.concat(rows, ignore_index=True), pd.DataFrame(static)


def write_partition(frame: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "part-00000.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demand-code")
    with tarfile.open(build_source_tarball(pipeline("demand"), root / "sourcedir.tar.gz"), "r:gz") as tar:
        tar.extractall(root / "code", filter="data")
    return root / "code"


def run(code: Path, script: str, *args: str, env: dict[str, str] | None = None, check: bool = True) -> Any:
    completed = subprocess.run(
        [sys.executable, str(code / script), *args],
        env={**os.environ, "PYTHONPATH": str(code), **(env or {})},
        cwd=code,
        capture_output=True,
        text=True,
        check=False,
    )
    if check:
        assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


PARTITION = f"s3://lake/features/demand/daily/as_of={AS_OF}/"
#: The raw `regional_holidays` table: one holiday in each region inside the history, one after it, one row unusable.
HOLIDAYS = pd.DataFrame(
    {
        "region": ["north", "south", "north", None],
        "date": [dt.date(2024, 6, 10), dt.date(2024, 7, 4), dt.date(2024, 8, 15), dt.date(2024, 7, 1)],
        "name": ["North Day", "South Day", "Later Day", "nameless"],
    }
)


@pytest.fixture(scope="module")
def prepared(code: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demand-prepare")
    daily, static = demand_rows()
    bad = pd.concat(
        [
            daily.iloc[[0]].assign(units=-3.0),  # not a count
            daily.iloc[[1]],  # a second row for the same day
            daily.iloc[[2]].assign(sku="NO-STATIC"),  # no static attributes
        ]
    )
    write_partition(pd.concat([daily, bad], ignore_index=True).drop(columns=[]), root / "daily")
    write_partition(static, root / "static")
    # Two snapshots of the raw calendar, as ingest lays them out: only the newest counts.
    write_partition(HOLIDAYS.iloc[:1].assign(date=dt.date(2024, 5, 1)), root / "holidays" / "dt=2024-07-01")
    write_partition(HOLIDAYS, root / "holidays" / "dt=2024-08-01")
    run(
        code,
        "prepare.py",
        "--daily-dir", str(root / "daily"),
        "--static-dir", str(root / "static"),
        "--holidays-dir", str(root / "holidays"),
        "--panel-dir", str(root / "panel"),
        "--quarantine-dir", str(root / "quarantine"),
        "--daily-partition", PARTITION,
    )  # fmt: skip
    return root


def test_prepare_quarantines_unusable_rows_with_a_reason_and_keeps_every_good_one(prepared: Path) -> None:
    quarantined = pd.read_parquet(prepared / "quarantine" / "rows.parquet")
    assert sorted(quarantined["reason"]) == [
        "a second row for the same store, sku and date",
        "missing region",
        "no static attributes for the pair",
        "units missing or negative",
    ]
    meta = json.loads((prepared / "panel" / "meta.json").read_text())
    assert meta == {"as_of": AS_OF.isoformat(), "series": 12, "days": DAYS, "start": str(AS_OF - dt.timedelta(DAYS))}


def test_prepare_keeps_the_newest_holiday_calendar_in_the_panel(prepared: Path) -> None:
    from shelfwise.demand.series import load_panel

    holidays = load_panel(prepared / "panel").holidays
    assert holidays.dates == {
        "north": (dt.date(2024, 6, 10), dt.date(2024, 8, 15)),
        "south": (dt.date(2024, 7, 4),),
    }


def test_prepare_refuses_features_of_another_version_naming_both(code: Path, tmp_path: Path) -> None:
    daily, static = demand_rows()
    write_partition(daily.assign(feature_set_version="demand/0"), tmp_path / "daily")
    write_partition(static, tmp_path / "static")
    done = run(
        code,
        "prepare.py",
        "--daily-dir", str(tmp_path / "daily"),
        "--static-dir", str(tmp_path / "static"),
        "--panel-dir", str(tmp_path / "panel"),
        "--quarantine-dir", str(tmp_path / "quarantine"),
        "--daily-partition", PARTITION,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "demand/0" in done.stderr
    assert FEATURE_SET_VERSION in done.stderr


def train(code: Path, panel: Path, model_dir: Path, *extra: str) -> Path:
    env = {"SM_CHANNEL_PANEL": str(panel), "SM_MODEL_DIR": str(model_dir), "SM_INPUT_CONFIG_DIR": str(model_dir / "x")}
    run(code, "train.py", *QUICK, *extra, env=env)
    archive = model_dir.parent / f"{model_dir.name}-archive" / "model.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive.parent


def evaluate(code: Path, model: Path, panel: Path, out: Path, *extra: str) -> dict[str, Any]:
    run(
        code,
        "evaluate.py",
        "--model-dir", str(model),
        "--panel-dir", str(panel),
        "--evaluation-dir", str(out / "evaluation"),
        "--package-dir", str(out / "package"),
        "--sample-series", "6",
        "--paths", "40",
        "--serving-paths", "50",
        *extra,
    )  # fmt: skip
    evaluation: dict[str, Any] = json.loads((out / "evaluation" / "evaluation.json").read_text())
    return evaluation


def gate_passes(evaluation: dict[str, Any]) -> bool:
    """The training pipeline's own gate, with its parameters' defaults."""
    spec = pipeline("demand").training(_config())
    assert spec.gate is not None
    defaults = spec.parameter_defaults()

    def holds(condition: AtLeast) -> bool:
        value: Any = evaluation
        for part in condition.left.path.split("."):
            value = value[part]
        return float(value) >= float(defaults[condition.right.name])

    return all(holds(c) for c in spec.gate.conditions)


def _config() -> Any:
    from shelfwise.pipelines.spec import PipelineConfig

    return PipelineConfig("p", "arn:aws:iam::1:role/r", "eu-west-1", "b", "g", "s3://b/s.tar.gz")


@pytest.fixture(scope="module")
def trained(code: Path, prepared: Path) -> Path:
    return train(code, prepared / "panel", prepared / "model")


@pytest.fixture(scope="module")
def evaluated(code: Path, prepared: Path, trained: Path) -> tuple[Path, dict[str, Any]]:
    out = prepared / "evaluated"
    return out, evaluate(code, trained, prepared / "panel", out)


def test_evaluation_scores_every_candidate_at_every_level_and_selects_the_best(
    evaluated: tuple[Path, dict[str, Any]],
) -> None:
    _, evaluation = evaluated
    levels = evaluation["levels"]
    assert set(levels) == {"store x sku", "store", "region", "category", "department", "total"}
    bottom = levels["store x sku"]
    assert set(bottom) == {"deepar", "autoets", "seasonal_naive", "npts", "deepar+autoets"}
    assert evaluation["selected"] == min(bottom, key=lambda m: bottom[m]["wql"])
    assert evaluation["windows"] == [str(AS_OF - dt.timedelta(days=56)), str(AS_OF - dt.timedelta(days=28))]
    assert evaluation["improvement_worst_window"] <= evaluation["improvement_over_seasonal_naive"]
    assert len(evaluation["examples"]) == 2
    # DeepAR's spread factor per level, and the 80% coverage it gave against what the paths had before it.
    assert set(evaluation["calibration"]) == set(levels)
    for level, calibration in evaluation["calibration"].items():
        assert calibration["spread"] > 0
        assert calibration["coverage_80"] == pytest.approx(levels[level]["deepar"]["coverage_80"])
    # DeepAR is scored the way it sums: reconciled to the comparable days when that is calibrated and sharper.
    calibration = evaluation["calibration"]
    wql = {v: sum(c[f"wql_{v}"] for c in calibration.values()) for v in ("summed", "reconciled")}
    gap = {
        v: max(abs(c[f"coverage_80_{v}"] - 0.8) for level, c in calibration.items() if level != "store x sku")
        for v in ("summed", "reconciled")
    }
    calibrated = [v for v in gap if gap[v] <= 0.05]
    expected = min(calibrated, key=wql.__getitem__) if calibrated else min(gap, key=gap.__getitem__)
    assert evaluation["reconciled_to_total"] == (expected == "reconciled")
    chosen = "wql_reconciled" if evaluation["reconciled_to_total"] else "wql_summed"
    assert evaluation["calibration"]["total"][chosen] == pytest.approx(levels["total"]["deepar"]["wql"])


def test_the_package_is_the_selection_with_the_versions_it_was_trained_with(
    evaluated: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, evaluation = evaluated
    archive = out / "package" / "model.tar.gz"
    assert model_store.installed_versions() == evaluation["versions"]
    from shelfwise.demand.backtest import serving_spread
    from shelfwise.model_cache import sha256_of

    assert sha256_of(archive) == evaluation["artifact"]["sha256"]
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    manifest = model_store.load_manifest(tmp_path)
    assert manifest.forecaster == evaluation["selected"]
    assert manifest.model_version == evaluation["model_version"]
    assert not (tmp_path / model_store.BACKTEST_PREDICTOR).exists()  # evaluation only: not served
    # DeepAR is served as scored; an ensemble's sums take the factors of DeepAR's plain sums.
    key = "spread" if manifest.forecaster == "deepar" else "spread_summed"
    fitted = {level: c[key] for level, c in evaluation["calibration"].items()}
    assert manifest.spread == serving_spread(manifest.forecaster, fitted)
    assert manifest.reconcile_to_total == (evaluation["reconciled_to_total"] and manifest.forecaster == "deepar")


def test_the_gate_passes_deepar_and_fails_a_deepar_trained_on_shuffled_targets(
    code: Path, prepared: Path, trained: Path, tmp_path: Path
) -> None:
    """On series with a strong weekly rhythm, DeepAR beats seasonal naive by the gate's margin; trained on the same
    values shuffled across days and series it learns no rhythm, and the gate refuses it."""
    honest = evaluate(code, trained, prepared / "panel", tmp_path / "honest", "--candidates", "deepar")
    assert honest["selected"] == "deepar"
    assert gate_passes(honest), honest["improvement_worst_window"]

    panel = prepared / "panel"
    shuffled_panel = tmp_path / "shuffled-panel"
    shutil.copytree(panel, shuffled_panel)
    arrays = dict(np.load(panel / "panel.npz"))
    units = arrays["units"]
    observed = np.isfinite(units)
    values = units[observed]
    np.random.default_rng(1).shuffle(values)
    units[observed] = values
    np.savez_compressed(shuffled_panel / "panel.npz", **{**arrays, "units": units})
    model = train(code, shuffled_panel, tmp_path / "shuffled-model")
    # trained on shuffled targets, evaluated on the real series
    shuffled = evaluate(code, model, panel, tmp_path / "shuffled", "--candidates", "deepar")
    assert not gate_passes(shuffled), shuffled["improvement_worst_window"]
    assert shuffled["demand"]["wql"] > honest["demand"]["wql"]


def forecast(code: Path, package: Path, prepared: Path, out: Path, sha256: str, check: bool = True) -> Any:
    return run(
        code,
        "forecast.py",
        "--model-dir", str(package),
        "--model-sha256", sha256,
        "--daily-dir", str(prepared / "daily"),
        "--static-dir", str(prepared / "static"),
        "--predictions-dir", str(out / "predictions"),
        "--quarantine-dir", str(out / "quarantine"),
        "--daily-partition", PARTITION,
        check=check,
    )  # fmt: skip


def test_the_batch_forecast_writes_every_active_series_and_every_sum(
    code: Path, prepared: Path, evaluated: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, evaluation = evaluated
    forecast(code, out / "package", prepared, tmp_path, evaluation["artifact"]["sha256"])
    forecasts = pd.read_parquet(tmp_path / "predictions" / "forecasts.parquet")
    assert len(forecasts) == 12 * 28
    assert forecasts["date"].min() == AS_OF
    quantiles = forecasts[["p05", "p10", "p25", "p50", "p75", "p90", "p95"]].to_numpy()
    assert (np.diff(quantiles, axis=1) >= 0).all()  # quantiles never cross
    lines = [json.loads(line) for line in (tmp_path / "predictions" / "online_records.jsonl").open()]
    series = [line for line in lines if line["entity"] == "forecast"]
    sums = {line["id"]: line for line in lines if line["entity"] == "forecast_aggregate"}
    assert len(series) == 12
    assert set(sums) == {
        "total#",
        "region#north",
        "region#south",
        *(f"store#{s}" for s in STORES),
        "category#cat-0",
        "category#cat-1",
        "department#dept-1",
    }
    # bottom-up: the total's mean is the sum of the series' means (to the rounding of each)
    total = np.array(sums["total#"]["mean"])
    assert np.allclose(total, np.sum([line["mean"] for line in series], axis=0), atol=0.01 * 13)
    assert all(line["model_version"] == evaluation["model_version"] for line in lines)


def test_the_batch_forecast_refuses_an_archive_that_is_not_the_registered_one(
    code: Path, prepared: Path, evaluated: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = evaluated
    done = forecast(code, out / "package", prepared, tmp_path, "0" * 64, check=False)
    assert done.returncode != 0
    assert "differs from the registered" in done.stderr


def unpacked_manifest(out: Path, folder: Path) -> dict[str, Any]:
    """The evaluation's packaged model unpacked into `folder`, and its manifest as JSON (for tests to alter)."""
    with tarfile.open(out / "package" / "model.tar.gz") as tar:
        tar.extractall(folder, filter="data")
    manifest: dict[str, Any] = json.loads((folder / model_store.MANIFEST).read_text())
    return manifest


def test_a_model_trained_under_other_library_versions_is_refused_naming_them(
    evaluated: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    manifest = unpacked_manifest(evaluated[0], tmp_path)
    manifest["versions"] = {**manifest["versions"], "gluonts": "0.14.4", "torch": "2.1.0"}
    (tmp_path / model_store.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(model_store.ModelVersionMismatchError) as caught:
        model_store.load_manifest(tmp_path)
    message = str(caught.value)
    assert "gluonts 0.14.4" in message
    assert "torch 2.1.0" in message
    assert "pandas" not in message  # only what differs


def test_a_model_trained_with_other_covariates_is_refused_naming_them(
    evaluated: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from shelfwise.demand.calendar import ALL_COVARIATES

    manifest = unpacked_manifest(evaluated[0], tmp_path)
    assert manifest["covariates"] == list(ALL_COVARIATES)
    # A package from before the regional holidays: its network reads two dynamic features fewer.
    del manifest["covariates"]
    (tmp_path / model_store.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(model_store.CovariateMismatchError, match="regional_holiday_eve, regional_holiday"):
        model_store.load_manifest(tmp_path)
