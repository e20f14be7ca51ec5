"""Synthetic churn feature sets for the pipeline tests: churn driven by recency and frequency, or by nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shelfwise.churn.features import CUTOFF, FEATURE_NAMES, FEATURE_SET, LABEL, VERSION_COLUMN

FIRST_CUTOFF = dt.date(2024, 1, 1)


def feature_frame(
    n_customers: int, cutoffs: int, seed: int, signal: bool, labelled: bool = True, intercept: float = -0.3
) -> pd.DataFrame:
    """One row per customer and monthly cutoff.

    With `signal`, churn odds rise with recency relative to the customer's own purchase rhythm (recency over mean
    inter-purchase time), which trees find and a logistic regression on recency, frequency and monetary value
    cannot; without, labels are coin flips. `intercept` sets the churn rate.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(cutoffs):
        n = n_customers
        ipt_mean = rng.gamma(2.0, 20.0, n).round() + 3
        recency = (ipt_mean * rng.gamma(1.5, 0.8, n)).round()
        frequency = rng.poisson(4, n) + 2
        data = {name: rng.normal(0, 1, n) for name in FEATURE_NAMES}
        data.update(
            recency_days=recency,
            ipt_mean_days=ipt_mean,
            frequency=frequency.astype(float),
            monetary=frequency * rng.gamma(2, 30, n),
            tenure_days=recency + ipt_mean * frequency,
            first_purchase_days=recency + ipt_mean * (frequency - 1),
        )
        frame = pd.DataFrame(data)
        frame.insert(0, CUTOFF, FIRST_CUTOFF + dt.timedelta(days=30 * k))
        frame.insert(0, "customer_id", [f"C{i:06d}" for i in range(n)])
        frame[VERSION_COLUMN] = FEATURE_SET.qualified_version
        if labelled:
            logit = 2.5 * np.log(recency / ipt_mean + 0.05) - 0.1 * (frequency - 5) if signal else np.zeros(n)
            frame[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-(logit + intercept)))).astype("int8")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write_by_cutoff(frame: pd.DataFrame, root: Path) -> Path:
    """Write `frame` as `cutoff=YYYY-MM-DD/part-00000.parquet` folders, the layout the Glue job writes."""
    for cutoff, rows in frame.groupby(CUTOFF):
        folder = root / f"{CUTOFF}={cutoff}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / "part-00000.parquet")
    return root


@dataclass(frozen=True)
class Synthetic:
    """The helpers above, handed to tests as a fixture (test modules cannot import conftest by name)."""

    frame: Callable[..., pd.DataFrame] = feature_frame
    write: Callable[[pd.DataFrame, Path], Path] = write_by_cutoff


@pytest.fixture(scope="session")
def synthetic() -> Synthetic:
    return Synthetic()
