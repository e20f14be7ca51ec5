"""Processing step: split the churn training features by time into train, validation and test.

test = the latest labelled cutoff (held out for evaluation), validation = the latest cutoff at least `purge-days`
before it (early stopping and calibration), train = every cutoff at least `purge-days` before validation. Rows that
cannot be used (no customer id, no cutoff, a label other than 0/1) go to the quarantine output with a `reason`.

Runs unchanged in the SageMaker XGBoost container (pandas, pyarrow) and locally: every location is an argument whose
default is the container path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ID = "customer_id"
CUTOFF = "cutoff"
LABEL = "churned"
BASE = Path("/opt/ml/processing")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features-dir", type=Path, default=BASE / "input" / "features")
    parser.add_argument("--train-dir", type=Path, default=BASE / "train")
    parser.add_argument("--validation-dir", type=Path, default=BASE / "validation")
    parser.add_argument("--test-dir", type=Path, default=BASE / "test")
    parser.add_argument("--quarantine-dir", type=Path, default=BASE / "quarantine")
    parser.add_argument("--purge-days", type=int, default=0, help="minimum days between split cutoffs")
    return parser.parse_args(argv)


def read_feature_dir(root: Path) -> pd.DataFrame:
    """Every Parquet file under `root`; `cutoff` comes from the file or from its `cutoff=YYYY-MM-DD` folder."""
    files = sorted(p for p in root.rglob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        raise SystemExit(f"no Parquet files under {root}")
    frames = []
    for path in files:
        frame = pq.read_table(path).to_pandas()
        if CUTOFF not in frame.columns:
            folder = next((p.name for p in path.parents if p.name.startswith(f"{CUTOFF}=")), None)
            if folder is None:
                raise SystemExit(f"{path} has no {CUTOFF!r} column and is not under a {CUTOFF}=... folder")
            frame[CUTOFF] = folder.split("=", 1)[1]
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    data[CUTOFF] = pd.to_datetime(data[CUTOFF], errors="coerce").dt.normalize()
    return data


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


def split_cutoffs(cutoffs: list[pd.Timestamp], purge_days: int) -> dict[str, list[pd.Timestamp]]:
    """Assign each cutoff to train, validation or test, later cutoffs to later splits."""
    ordered = sorted(set(cutoffs))
    gap = pd.Timedelta(days=purge_days)
    test = ordered[-1]
    earlier = [c for c in ordered if c <= test - gap and c < test]
    if not earlier:
        raise SystemExit(f"need a validation cutoff {purge_days} days before the test cutoff {test.date()}")
    validation = earlier[-1]
    train = [c for c in ordered if c <= validation - gap and c < validation]
    if not train:
        raise SystemExit(
            f"need at least three cutoffs {purge_days} days apart for a time split, got "
            + ", ".join(str(c.date()) for c in ordered)
        )
    return {"train": train, "validation": [validation], "test": [test]}


def write_split(frame: pd.DataFrame, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = frame.sort_values([CUTOFF, ID], kind="stable").reset_index(drop=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out_dir / "part-00000.parquet")


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    data = read_feature_dir(args.features_dir)
    if LABEL not in data.columns or ID not in data.columns:
        raise SystemExit(f"training features need columns {ID!r} and {LABEL!r}; got {sorted(data.columns)}")
    reasons = quarantine_reasons(data)
    bad = reasons != ""
    good = data[~bad].copy()
    good[LABEL] = pd.to_numeric(good[LABEL]).astype("int8")
    if good.empty:
        raise SystemExit("no usable training rows")
    splits = split_cutoffs(list(good[CUTOFF]), args.purge_days)
    outputs = {"train": args.train_dir, "validation": args.validation_dir, "test": args.test_dir}
    counts: dict[str, object] = {"input": len(data), "quarantined": int(bad.sum())}
    for name, cutoffs in splits.items():
        rows = good[good[CUTOFF].isin(cutoffs)]
        write_split(rows, outputs[name])
        counts[name] = {
            "rows": len(rows),
            "positives": int(rows[LABEL].sum()),
            "cutoffs": [str(c.date()) for c in cutoffs],
        }
    unused = good[~good[CUTOFF].isin([c for cs in splits.values() for c in cs])]
    counts["purged"] = len(unused)
    rejected = data[bad].assign(reason=reasons[bad])
    args.quarantine_dir.mkdir(parents=True, exist_ok=True)
    if not rejected.empty:
        pq.write_table(pa.Table.from_pandas(rejected, preserve_index=False), args.quarantine_dir / "part-00000.parquet")
    (args.quarantine_dir / "counts.json").write_text(json.dumps(counts, indent=2), encoding="utf-8")
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1:])
