"""Processing step: split the churn training features by time into train, validation and test, honestly.

At a real cutoff T no label is known for a cutoff later than T minus the label horizon: its window has not closed.
So: test = the latest labelled cutoff (held out for evaluation); validation = the latest cutoff whose label window
ends by the test cutoff (`cutoff + horizon <= test`); train = every cutoff whose label window ends by the
validation cutoff (tuning and early stopping); refit = every cutoff whose label window ends by the test cutoff (the
final model, once tuned, learns from all the history that was known at the test cutoff). No label a model learns
from, or is early-stopped or tuned on, reads a purchase made in the window it is evaluated on. The horizon is the
feature set's (`shelfwise.churn.features`, staged with this script).

Also the cold-start measurement: among the registered customers without a purchase at the validation (and test)
cutoff, how many churned; train.py stores the validation rate as the prior the API gives such customers.

Rows that cannot be used (no customer id, no cutoff, a label other than 0/1) go to the quarantine output with a
`reason`. Every location is an argument whose default is the container path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from step_io import parquet_files, read_partitioned, write_json, write_parquet

from shelfwise.churn.features import CUTOFF, FEATURE_SET, LABEL

ID = FEATURE_SET.entity.join_key
BASE = Path("/opt/ml/processing")
COLD_START_FILE = "cold_start.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features-dir", type=Path, default=BASE / "input" / "features")
    parser.add_argument("--cold-start-dir", type=Path, default=BASE / "input" / "cold-start")
    parser.add_argument("--train-dir", type=Path, default=BASE / "train")
    parser.add_argument("--validation-dir", type=Path, default=BASE / "validation")
    parser.add_argument("--test-dir", type=Path, default=BASE / "test")
    parser.add_argument("--refit-dir", type=Path, default=BASE / "refit")
    parser.add_argument("--quarantine-dir", type=Path, default=BASE / "quarantine")
    return parser.parse_args(argv)


def quarantine_reasons(data: pd.DataFrame) -> pd.Series:
    """The first reason each row cannot be used for training, or "" when it can."""
    reasons = pd.Series("", index=data.index, dtype=object)
    label = pd.to_numeric(data[LABEL], errors="coerce") if LABEL in data.columns else None
    checks = [
        (data[ID].isna() | (data[ID].astype(str).str.len() == 0), f"missing {ID}"),
        (data[CUTOFF].isna(), f"missing or malformed {CUTOFF}"),
    ]
    if label is not None:
        checks.append((~label.isin([0, 1]), f"{LABEL} is not 0 or 1"))
    for bad, reason in reversed(checks):
        reasons[bad] = reason
    return reasons


def split_cutoffs(cutoffs: list[pd.Timestamp], horizon_days: int) -> dict[str, list[pd.Timestamp]]:
    """Assign each cutoff to train, validation or test so that no label window reaches into a later split's.

    A cutoff `c` labels purchases in `[c, c + horizon)`; it may feed a split that starts at `s` only if
    `c + horizon <= s`. Cutoffs between the splits (their windows would overlap) are left out.
    """
    ordered = sorted(set(cutoffs))
    gap = pd.Timedelta(days=horizon_days)
    test = ordered[-1]
    earlier = [c for c in ordered if c + gap <= test]
    if not earlier:
        raise SystemExit(
            f"no validation cutoff: a validation cutoff must be at least {horizon_days} days (the label horizon) "
            f"before the test cutoff {test.date()}; cutoffs: {', '.join(str(c.date()) for c in ordered)}"
        )
    validation = earlier[-1]
    train = [c for c in ordered if c + gap <= validation]
    if not train:
        raise SystemExit(
            f"no training cutoff: training cutoffs must be at least {horizon_days} days (the label horizon) before "
            f"the validation cutoff {validation.date()}, which is {horizon_days}+ days before the test cutoff "
            f"{test.date()}; cutoffs: {', '.join(str(c.date()) for c in ordered)}"
        )
    refit = [c for c in ordered if c + gap <= test]
    return {"train": train, "validation": [validation], "test": [test], "refit": refit}


def cold_start_summary(cold: pd.DataFrame | None, cutoff: pd.Timestamp) -> dict[str, object]:
    """Registered customers without a purchase at `cutoff` and how many of them churned."""
    rows = cold[cold[CUTOFF] == cutoff] if cold is not None else pd.DataFrame({LABEL: []})
    return {"cutoff": str(cutoff.date()), "customers": len(rows), "churned": int(rows[LABEL].sum())}


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    data = read_partitioned(args.features_dir, CUTOFF)
    if LABEL not in data.columns or ID not in data.columns:
        raise SystemExit(f"training features need columns {ID!r} and {LABEL!r}; got {sorted(data.columns)}")
    reasons = quarantine_reasons(data)
    bad = reasons != ""
    good = data[~bad].copy()
    good[LABEL] = pd.to_numeric(good[LABEL]).astype("int8")
    if good.empty:
        raise SystemExit("no usable training rows")
    splits = split_cutoffs(list(good[CUTOFF]), FEATURE_SET.label_horizon_days)
    cold = read_partitioned(args.cold_start_dir, CUTOFF) if parquet_files(args.cold_start_dir) else None
    outputs = {
        "train": args.train_dir,
        "validation": args.validation_dir,
        "test": args.test_dir,
        "refit": args.refit_dir,
    }
    counts: dict[str, object] = {
        "input": len(data),
        "quarantined": int(bad.sum()),
        "label_horizon_days": FEATURE_SET.label_horizon_days,
    }
    for name, cutoffs in splits.items():
        rows = good[good[CUTOFF].isin(cutoffs)].sort_values([CUTOFF, ID], kind="stable")
        write_parquet(rows, outputs[name] / "part-00000.parquet")
        counts[name] = {
            "rows": len(rows),
            "positives": int(rows[LABEL].sum()),
            "cutoffs": [str(c.date()) for c in cutoffs],
        }
        if name != "train":
            write_json(cold_start_summary(cold, cutoffs[-1]), outputs[name] / COLD_START_FILE)
    used = [c for name, cs in splits.items() if name != "refit" for c in cs]
    counts["between_splits"] = int((~good[CUTOFF].isin(used)).sum())
    rejected = data[bad].assign(reason=reasons[bad])
    args.quarantine_dir.mkdir(parents=True, exist_ok=True)
    if not rejected.empty:
        write_parquet(rejected, args.quarantine_dir / "part-00000.parquet")
    (args.quarantine_dir / "counts.json").write_text(json.dumps(counts, indent=2), encoding="utf-8")
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1:])
