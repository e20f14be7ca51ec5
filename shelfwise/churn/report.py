"""The registered churn model on the held-out cutoff: scores, AUC against the world's truth, and a picture.

The picture shows what a retention team asks first: are the probabilities honest (calibration by decile), and how
many churners does contacting the riskiest customers reach compared with the recency rule (cumulative gains).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from shelfwise.churn.features import CUTOFF, LABEL, LABEL_HORIZON_DAYS
from shelfwise.lake import Lake

TRAINING_PREFIX = "features/churn/training/"


@dataclass(frozen=True)
class HeldOut:
    """The latest labelled cutoff, scored by the registered model."""

    cutoff: str
    probability: np.ndarray
    churned: np.ndarray  # the observed label: no purchase in the horizon
    recency_days: np.ndarray
    truly_churned: np.ndarray | None  # the world's truth (synthetic worlds only)


def held_out_scores(lake: Lake, artifact_key: str, truth_path: Path | None = None) -> HeldOut:
    """Score the latest labelled cutoff of the training set with the model artifact at `artifact_key`."""
    from shelfwise.churn import scoring

    training = lake.read_table(TRAINING_PREFIX).to_pandas()
    last = training[CUTOFF].max()
    test = training[training[CUTOFF] == last]
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "model.tar.gz"
        lake.download_file(artifact_key, archive)
        model = scoring.load_archive(archive)
    probability = scoring.predict(model, {name: test[name].to_numpy() for name in model.stored_features})
    truly = None
    if truth_path is not None and truth_path.exists():
        truth = pq.read_table(truth_path).to_pandas().set_index("customer_id")
        churn_date = truth["churn_date"].reindex(test["customer_id"]).to_numpy(dtype="datetime64[D]")
        horizon_end = np.datetime64(str(last)[:10], "D") + np.timedelta64(LABEL_HORIZON_DAYS, "D")
        truly = ~np.isnat(churn_date) & (churn_date < horizon_end)
    return HeldOut(
        cutoff=str(last)[:10],
        probability=np.asarray(probability, dtype=float),
        churned=test[LABEL].to_numpy(dtype=bool),
        recency_days=test["recency_days"].to_numpy(dtype=float),
        truly_churned=truly,
    )


def truth_auc(held: HeldOut) -> float | None:
    """AUC against the world's true churn (not the observed label); None without truth or with one class only."""
    from sklearn.metrics import roc_auc_score

    truly = held.truly_churned
    if truly is None or truly.all() or not truly.any():
        return None
    return float(roc_auc_score(truly, held.probability))


def calibration_by_decile(probability: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean predicted probability and observed rate in each decile of the predictions."""
    order = np.argsort(probability, kind="stable")
    bins = np.array_split(order, 10)
    predicted = np.array([probability[b].mean() for b in bins if len(b)])
    observed = np.array([outcome[b].mean() for b in bins if len(b)])
    return predicted, observed


def cumulative_gains(score: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of customers contacted (riskiest first) against the share of all churners reached."""
    order = np.argsort(-score, kind="stable")
    reached = np.cumsum(outcome[order]) / max(int(outcome.sum()), 1)
    contacted = np.arange(1, len(score) + 1) / len(score)
    return np.concatenate([[0.0], contacted]), np.concatenate([[0.0], reached])


def plot_churn_report(held: HeldOut, path: Path) -> Path:
    """Write the calibration and cumulative-gains charts of the held-out cutoff to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    predicted, observed = calibration_by_decile(held.probability, held.churned)
    left.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    left.plot(predicted, observed, marker="o", label="XGBoost (registered)")
    left.set(xlabel="mean predicted churn probability (decile)", ylabel="observed churn rate", xlim=(0, 1), ylim=(0, 1))
    left.set_title("Are the probabilities honest?")
    left.legend(loc="upper left")

    for label, score in (("XGBoost (registered)", held.probability), ("recency rule", held.recency_days)):
        contacted, reached = cumulative_gains(score, held.churned)
        right.plot(contacted, reached, label=label)
    right.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    right.set(xlabel="share of customers contacted, riskiest first", ylabel="share of churners reached")
    right.set_title("Who to call first")
    right.legend(loc="lower right")
    fig.suptitle(f"Churn model on the held-out cutoff {held.cutoff} ({len(held.probability):,} customers)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
