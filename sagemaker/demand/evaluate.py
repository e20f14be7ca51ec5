"""Processing step: score every candidate forecaster on the same backtest windows, select the best, package it.

The candidates (`shelfwise.demand.backtest.CANDIDATES`: DeepAR, AutoETS, seasonal naive, NPTS and the mean of
DeepAR's and AutoETS's quantiles) forecast the last `windows` windows of 28 days from the history before each; the
DeepAR network is the training step's `backtest/` one, trained before the calibration window that precedes them,
so nothing it learned reaches into a window. Every level of the hierarchy is scored (MASE, RMSSE, wQL, 80% coverage,
bias); DeepAR's paths at each level are widened by a spread factor fitted on its errors in the windows before
(`shelfwise.demand.aggregation`), and the factors fitted on every window go into the manifest for serving.

DeepAR's sums are plain sums of its series, or its series reconciled location by location to last year's comparable
days (`shelfwise.demand.aggregation.reconcile_by_location`): of the two whose sums' 80% intervals cover 75-85% at every
level, the one with the lower wQL averaged over the levels, else the better calibrated (`BacktestResult.reconcile`);
the DeepAR candidate is scored, and served, that way.

Selection: the candidate (of `--candidates`, by default all) with the lowest store x SKU wQL over the windows.
What users receive is never worse than the best classic method, because the classic methods are candidates too.
The gate reads `improvement_worst_window`, the selected candidate's improvement over seasonal naive in its worst
window (1 - wQL / seasonal naive's wQL).

Writes `evaluation/evaluation.json` (the gate's property file and the registered metrics) and `package/model.tar.gz`:
the trained final network with a manifest naming the selected forecaster and the library versions
(`shelfwise.demand.model_store`), which is what gets registered and served.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from step_io import install_wheelhouse, one_archive, pack_folder, sha256_of, unpack_archive, write_json

BASE = Path("/opt/ml/processing")
EVALUATION_FILE = "evaluation.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=BASE / "model", help="holds the training step's model.tar.gz")
    parser.add_argument("--panel-dir", type=Path, default=BASE / "panel")
    parser.add_argument("--wheels-dir", type=Path, default=BASE / "input" / "wheels")
    parser.add_argument("--evaluation-dir", type=Path, default=BASE / "evaluation")
    parser.add_argument("--package-dir", type=Path, default=BASE / "package")
    parser.add_argument("--sample-series", type=int, default=300, help="store x SKU series every candidate scores")
    parser.add_argument(
        "--candidates",
        default="",
        help="comma-separated forecasters that may be selected (every one is scored); empty: any",
    )
    parser.add_argument("--paths", type=int, default=100, help="sample paths per series in the backtest")
    parser.add_argument("--serving-paths", type=int, default=200, help="sample paths the batch forecast draws")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str]) -> str:
    args = parse_args(argv)
    install_wheelhouse(args.wheels_dir)
    from shelfwise.demand import model_store
    from shelfwise.demand.backtest import (
        BASELINE,
        BOTTOM,
        CANDIDATES,
        LEVELS,
        RECONCILED,
        UNCALIBRATED,
        BacktestSettings,
        run_backtest,
    )
    from shelfwise.demand.keys import FEATURE_SET_VERSION
    from shelfwise.demand.report import pick_examples
    from shelfwise.demand.series import load_panel

    work = args.evaluation_dir.parent / "evaluate-work"
    trained_archive = one_archive(args.model_dir)
    unpack_archive(trained_archive, work / "model")
    model_dir = work / "model"
    training = json.loads((model_dir / "training.json").read_text(encoding="utf-8"))
    model_store.check_versions(training["versions"])
    model_store.check_covariates(training["covariates"])
    panel = load_panel(args.panel_dir)
    meta = json.loads((args.panel_dir / "meta.json").read_text(encoding="utf-8"))

    settings = BacktestSettings(
        windows=int(training["windows"]), n_paths=args.paths, sample_series=args.sample_series, seed=args.seed
    )
    backtest = model_store.load_predictor(model_dir, model_store.BACKTEST_PREDICTOR)
    result = run_backtest(panel, settings, work, trained=backtest, progress=lambda m: print(m, flush=True))

    # DeepAR's sums are reconciled to the comparable days if that is calibrated and sharper
    # (`BacktestResult.reconcile`); the candidate is then scored (and served) reconciled, at the bottom too.
    reconcile = result.reconcile()
    deepar = RECONCILED if reconcile else "deepar"

    def scored(model: str) -> str:
        return deepar if model == "deepar" else model

    def wql(model: str, window: int | None = None) -> float:
        if window is None:
            return result.mean("sales", BOTTOM, scored(model), "wql")
        return result.windows[window].scores["sales"][BOTTOM][scored(model)].wql

    allowed = [c.strip() for c in args.candidates.split(",") if c.strip()] or list(CANDIDATES)
    unknown = sorted(set(allowed) - set(CANDIDATES))
    if unknown or not allowed:
        raise SystemExit(f"--candidates must name some of {', '.join(CANDIDATES)}; got {args.candidates!r}")
    selected = min(allowed, key=wql)
    improvement = 1 - wql(selected) / wql(BASELINE)
    worst = min(1 - wql(selected, w) / wql(BASELINE, w) for w in range(len(result.windows)))

    spread, reconcile_to_total = result.serving(selected)
    package = work / "package"
    shutil.rmtree(package, ignore_errors=True)
    package.mkdir(parents=True)
    # The network goes with every selection (a few MB): the batch forecast loads it whatever was selected.
    shutil.copytree(model_dir / model_store.FINAL_PREDICTOR, package / model_store.FINAL_PREDICTOR)
    shutil.copy2(model_dir / model_store.CODES, package / model_store.CODES)
    model_version = f"{meta['as_of']}-{selected}-{sha256_of(trained_archive)[:8]}"
    model_store.write_manifest(
        package,
        model_store.ModelManifest(
            forecaster=selected,
            model_version=model_version,
            feature_set_version=FEATURE_SET_VERSION,
            versions=training["versions"],
            horizon=int(training["horizon"]),
            n_paths=args.serving_paths,
            trained_until=training["trained_until"],
            settings=training["settings"],
            spread=spread,
            reconcile_to_total=reconcile_to_total,
            covariates=training["covariates"],
        ),
    )
    archive = pack_folder(package, args.package_dir / "model.tar.gz")
    levels = {
        level: {
            model: {
                metric: result.mean("sales", level, scored(model), metric)
                for metric in ("mase", "rmsse", "wql", "coverage_80", "bias")
            }
            for model in CANDIDATES
        }
        for level in LEVELS
    }
    # Per level: DeepAR's plain sums against the reconciled ones, and what the spread factors did to the intervals.
    calibration = {
        level: {
            "spread": result.spread[deepar][level],
            "spread_summed": result.spread["deepar"][level],
            "wql_summed": result.mean("sales", level, "deepar", "wql"),
            "wql_reconciled": result.mean("sales", level, RECONCILED, "wql"),
            "coverage_80_summed": result.mean("sales", level, "deepar", "coverage_80"),
            "coverage_80_reconciled": result.mean("sales", level, RECONCILED, "coverage_80"),
            "coverage_80": result.mean("sales", level, deepar, "coverage_80"),
            "coverage_80_before": result.mean("sales", level, UNCALIBRATED, "coverage_80"),
        }
        for level in LEVELS
    }
    evaluation = {
        "demand": {
            "wql": wql(selected),
            "seasonal_naive_wql": wql(BASELINE),
            "mase": levels[BOTTOM][selected]["mase"],
            "coverage_80": levels[BOTTOM][selected]["coverage_80"],
        },
        "selected": selected,
        "improvement_over_seasonal_naive": improvement,
        "improvement_worst_window": worst,
        "windows": [str(w.cutoff) for w in result.windows],
        "reconciled_to_total": reconcile,
        "calibration": calibration,
        "series": result.series,
        "sampled_series": result.windows[0].scores["sales"][BOTTOM][selected].series,
        "levels": levels,
        "model_version": model_version,
        "feature_set_version": FEATURE_SET_VERSION,
        "versions": training["versions"],
        "artifact": {"sha256": sha256_of(archive)},
        "seconds": {**training["seconds"], **{k: round(v, 1) for k, v in result.seconds.items()}},
        "examples": pick_examples(result, RECONCILED if selected == "deepar" and reconcile_to_total else selected),
    }
    write_json(evaluation, args.evaluation_dir / EVALUATION_FILE)
    return (
        f"selected {selected}: store x SKU wQL {wql(selected):.3f} vs seasonal naive {wql(BASELINE):.3f} "
        f"({improvement:+.1%}, worst window {worst:+.1%})"
    )


if __name__ == "__main__":
    print(main(sys.argv[1:]))
