"""Training step: DeepAR (GluonTS, torch) on the prepared panel, twice.

Each is an ensemble of `--networks` DeepAR networks from different seeds (`shelfwise.demand.models.train_deepar`).

- `backtest/`: trained on the history before the backtest's calibration window only, so that the evaluation step
  scores it on windows it never saw (as it would run in production between two trainings);
- `deepar/`: trained on all of the history, what the batch forecast serves if DeepAR is selected.

Censored days are NaN in the target, which GluonTS masks out of the loss (`shelfwise.demand.models.train_deepar`).
Container contract: the `panel` channel (`SM_CHANNEL_PANEL`), the model to `SM_MODEL_DIR`, hyperparameters from
`hyperparameters.json` and `--name value` arguments (arguments win). The model folder's layout is
`shelfwise.demand.model_store`'s; the evaluation step adds the selection to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from step_io import hyperparameters_file, install_wheelhouse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    channel = os.environ.get
    parser.add_argument("--panel", type=Path, default=Path(channel("SM_CHANNEL_PANEL", "/opt/ml/input/data/panel")))
    parser.add_argument("--wheels", type=Path, default=Path(channel("SM_CHANNEL_WHEELS", "/opt/ml/input/data/wheels")))
    parser.add_argument("--model-dir", type=Path, default=Path(channel("SM_MODEL_DIR", "/opt/ml/model")))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batches_per_epoch", type=int, default=50)
    parser.add_argument("--networks", type=int, default=3, help="DeepAR networks per ensemble (different seeds)")
    parser.add_argument("--windows", type=int, default=2, help="backtest windows the evaluation step scores")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(**hyperparameters_file(parser))
    return parser.parse_args(argv)


def main(argv: list[str]) -> str:
    args = parse_args(argv)
    install_wheelhouse(args.wheels)
    from shelfwise.demand import model_store
    from shelfwise.demand.backtest import training_days
    from shelfwise.demand.calendar import ALL_COVARIATES
    from shelfwise.demand.models import HORIZON, DeepARSettings, train_deepar
    from shelfwise.demand.series import load_panel

    panel = load_panel(args.panel)
    settings = DeepARSettings(
        epochs=args.epochs, num_batches_per_epoch=args.batches_per_epoch, seed=args.seed, networks=args.networks
    )
    history_days = training_days(panel.n_days, args.windows)
    if history_days < 8 * 7:
        raise SystemExit(
            f"{panel.n_days} days of history leave {history_days} before {args.windows} backtest windows of "
            f"{HORIZON} days and the calibration window before them: at least 8 weeks are needed"
        )
    work = args.model_dir.parent / "deepar-work"
    seconds = {}
    for name, history in (
        (model_store.BACKTEST_PREDICTOR, panel.head(history_days)),
        (model_store.FINAL_PREDICTOR, panel),
    ):
        started = time.perf_counter()
        predictor, codes = train_deepar(history, settings, work / name)
        model_store.save_predictor(args.model_dir, name, predictor, codes)
        seconds[name] = round(time.perf_counter() - started, 1)
    training = {
        "versions": model_store.installed_versions(),
        "covariates": list(ALL_COVARIATES),
        "settings": {
            "epochs": args.epochs,
            "batches_per_epoch": args.batches_per_epoch,
            "seed": args.seed,
            "event_windows": settings.event_windows,
            "networks": settings.networks,
        },
        "windows": args.windows,
        "horizon": HORIZON,
        "history_days": {"backtest": history_days, "deepar": panel.n_days},
        "trained_until": panel.end.isoformat(),
        "seconds": seconds,
        "series": len(panel.keys),
        "regions_with_holidays": sorted(panel.holidays.dates),
    }
    (args.model_dir / "training.json").write_text(json.dumps(training, indent=2, sort_keys=True), encoding="utf-8")
    return (
        f"DeepAR trained on {len(panel.keys):,} series: backtest {seconds['backtest']} s, final {seconds['deepar']} s"
    )


if __name__ == "__main__":
    print(main(sys.argv[1:]))
