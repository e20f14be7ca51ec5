"""A demand model as a folder (the inside of `model.tar.gz`): which forecaster serves, its trained parts, and the
versions of the libraries it was trained with.

    model.json       the manifest (`ModelManifest`): forecaster, versions, settings, feature-set version, spread
                     factors
    deepar/network-<n>/    the DeepAR networks trained on all of the history (GluonTS `serialize`), when trained
    backtest/network-<n>/  the DeepAR networks trained before the first backtest window (evaluation only)
    static_codes.json      the integer codes of the static attributes both ensembles were trained with

GluonTS predictors do not load reliably across versions of gluonts, torch and pandas, so `load_manifest` refuses a
model trained under other versions than the running ones, naming each: better a clear failure at the start of the
batch forecast than forecasts from a half-restored network.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from shelfwise.demand.calendar import ALL_COVARIATES
from shelfwise.demand.models import DeepAREnsemble, StaticCodes
from shelfwise.demand.pipeline import CANDIDATE_NAMES

MANIFEST = "model.json"
CODES = "static_codes.json"
FINAL_PREDICTOR = "deepar"
BACKTEST_PREDICTOR = "backtest"
NETWORK = "network"
#: The libraries whose versions a serialized GluonTS predictor depends on.
PINNED_LIBRARIES: tuple[str, ...] = ("gluonts", "torch", "pandas")
#: The forecasters a model can serve.
FORECASTERS: tuple[str, ...] = tuple(CANDIDATE_NAMES)


class ModelVersionMismatchError(RuntimeError):
    """The model was trained with other versions of gluonts, torch or pandas than the running ones."""


class CovariateMismatchError(RuntimeError):
    """The model was trained with other calendar covariates than this code computes."""


@dataclass(frozen=True)
class ModelManifest:
    forecaster: str
    model_version: str
    feature_set_version: str
    versions: dict[str, str]
    horizon: int
    n_paths: int
    #: The day after the last day the final predictor learned from.
    trained_until: str
    settings: dict[str, Any] = field(default_factory=dict)
    #: Per hierarchy level ("store x sku", "store", ..., "total"), the factor the served paths are spread about
    #: their mean by (`shelfwise.demand.aggregation.widen`), fitted on the backtest; a level left out keeps 1.
    spread: dict[str, float] = field(default_factory=dict)
    #: Whether the series' paths are reconciled to a forecast of the total before anything is summed or served.
    reconcile_to_total: bool = False
    #: The dynamic features DeepAR was trained with, in order; a network fed others would misread them.
    covariates: list[str] = field(default_factory=lambda: list(ALL_COVARIATES))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def installed_versions() -> dict[str, str]:
    """The running versions of the libraries a predictor depends on (local builds' `+cpu` suffix left out)."""
    return {name: metadata.version(name).split("+", 1)[0] for name in PINNED_LIBRARIES}


def check_versions(recorded: dict[str, str], running: dict[str, str] | None = None) -> None:
    """Raise ModelVersionMismatchError naming every library whose version differs."""
    running = running or installed_versions()
    differ = [
        f"{name} {recorded.get(name)} (running {running[name]})"
        for name in running
        if recorded.get(name) != running[name]
    ]
    if differ:
        raise ModelVersionMismatchError(
            "the demand model was trained with " + ", ".join(differ) + "; serialized GluonTS predictors do not load "
            "across versions: forecast with the versions it was trained with, or train it again"
        )


def write_manifest(model_dir: Path, manifest: ModelManifest) -> None:
    if manifest.forecaster not in FORECASTERS:
        raise ValueError(f"forecaster must be one of {', '.join(FORECASTERS)}, got {manifest.forecaster!r}")
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")


def load_manifest(model_dir: Path, running: dict[str, str] | None = None) -> ModelManifest:
    """The manifest, after checking the model was trained with the running library versions."""
    path = model_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} holds no {MANIFEST}: not a demand model")
    fields = json.loads(path.read_text(encoding="utf-8"))
    # A manifest from before the field was recorded: the covariates of the time, without the regional ones.
    fields.setdefault("covariates", [c for c in ALL_COVARIATES if not c.startswith("regional_")])
    manifest = ModelManifest(**fields)
    check_versions(manifest.versions, running)
    check_covariates(manifest.covariates)
    return manifest


def check_covariates(recorded: list[str]) -> None:
    """Raise CovariateMismatchError naming the covariates only one side has."""
    if list(recorded) == list(ALL_COVARIATES):
        return
    missing = [c for c in ALL_COVARIATES if c not in recorded]
    extra = [c for c in recorded if c not in ALL_COVARIATES]
    raise CovariateMismatchError(
        "the demand model was trained with other calendar covariates than this code computes "
        f"(it lacks {', '.join(missing) or 'none'}; it has {', '.join(extra) or 'no'} others, or another order): "
        "train it again"
    )


def save_predictor(model_dir: Path, name: str, predictor: DeepAREnsemble, codes: StaticCodes) -> None:
    for number, member in enumerate(predictor.members):
        target = model_dir / name / f"{NETWORK}-{number}"
        target.mkdir(parents=True, exist_ok=True)
        member.serialize(target)
    (model_dir / CODES).write_text(json.dumps(codes.values, sort_keys=True), encoding="utf-8")


def load_predictor(model_dir: Path, name: str) -> tuple[DeepAREnsemble, StaticCodes]:
    """An ensemble and the static codes it was trained with; call `load_manifest` first (it checks versions)."""
    from gluonts.model.predictor import Predictor

    folders = sorted((model_dir / name).glob(f"{NETWORK}-*"), key=lambda f: int(f.name.rsplit("-", 1)[1]))
    if not folders:
        raise FileNotFoundError(
            f"{model_dir / name} holds no {NETWORK}-<n> folders: a model from before DeepAR ensembles; train it again"
        )
    codes = json.loads((model_dir / CODES).read_text(encoding="utf-8"))
    members = tuple(Predictor.deserialize(folder) for folder in folders)
    return DeepAREnsemble(members), StaticCodes({k: tuple(v) for k, v in codes.items()})
