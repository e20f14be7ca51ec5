"""`shelfwise bench cold-start --data world|world:DIR`: cold starts from visual neighbours against the attribute model
and the category average, on the world's launches.

The launches and windows are `bench launches`' (`shelfwise.demand.cold_start_backtest`): at each of the last
`--windows` windows of 28 days, the store x SKU series launched in the four weeks before it and those launching
inside it, forecast from the history before the window, scored on it against the true demand and the sales. Beside
the attribute model and the category average, the visual neighbour model (`shelfwise.demand.visual_cold_start`)
forecasts them from the same history with the image embeddings of the world's catalogue:
- learned: the embedding model (`shelfwise.visual.embedding`) trained `--epochs` epochs on the images of the SKUs
  launched before the first scored launch, so every launch's image is one it never saw (the cold-start case);
- the ablation: neighbours by raw pixels (downscaled) and by colour histograms (`shelfwise.visual.baselines`).
Each is scored with its fitted credibility Z and with Z = 1 (the neighbours' demand taken as it is).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from shelfwise.bench.forecast import DEFAULT_WORLD
from shelfwise.demand.cold_start_backtest import ALL, ATTRIBUTE_MODEL, BEFORE, CATEGORY_AVERAGE, INSIDE

if TYPE_CHECKING:
    from shelfwise.demand.cold_start_backtest import Forecaster, LaunchBacktest
    from shelfwise.demand.series import DemandPanel
    from shelfwise.demand.visual_cold_start import Embeddings
    from shelfwise.visual.catalogue import Catalogue

LEARNED = "learned"
PIXELS = "pixels"
HISTOGRAM = "histogram"
FULL_TRUST = "Z=1"


def method(embedding: str, full_trust: bool = False) -> str:
    """The name a visual neighbour forecast is scored under."""
    return f"visual {embedding}" + (f" {FULL_TRUST}" if full_trust else "")


@dataclass(frozen=True)
class NeighbourFit:
    """Per embedding: what the neighbour model fitted at each window, and how well the embedding finds a launch's
    category."""

    credibility: list[float]
    slope: list[float]
    category_precision_at_1: float


@dataclass(frozen=True)
class ColdStartBench:
    backtest: LaunchBacktest
    fits: dict[str, NeighbourFit]
    launch_skus: int
    trained_skus: int
    epochs: int
    train_seconds: float


def held_out_skus(panel: DemandPanel, first_cutoff: int) -> set[str]:
    """The SKUs launched from four weeks before the first window on: every SKU the backtest scores, and later ones."""
    from shelfwise.demand.batch_forecast import COLD_START_DAYS

    launch = panel.keys.assign(launch=panel.launch_index).groupby("sku")["launch"].min()
    return {str(s) for s in launch.index[launch.to_numpy() > first_cutoff - COLD_START_DAYS]}


def neighbour_forecasters(
    embeddings: dict[str, Embeddings], n_paths: int, seed: int, fits: dict[str, list[tuple[float, float]]]
) -> dict[str, Forecaster]:
    """Per embedding, the visual neighbour model with fitted Z and with Z = 1; each fit's (Z, slope) is appended to
    `fits[embedding]`."""
    from shelfwise.demand.models import HORIZON
    from shelfwise.demand.visual_cold_start import NeighbourSettings, VisualNeighbourEstimator

    def forecaster(name: str, vectors: Embeddings, credibility: bool) -> Forecaster:
        estimator = VisualNeighbourEstimator(NeighbourSettings(credibility=credibility))

        def forecast(history: DemandPanel, series: DemandPanel) -> np.ndarray:
            predictor = estimator.train(history, vectors)
            if credibility:
                fits.setdefault(name, []).append((predictor.credibility, predictor.slope))
            return predictor.predict(series, HORIZON, n_paths, seed)

        return forecast

    out: dict[str, Forecaster] = {}
    for name, vectors in embeddings.items():
        out[method(name)] = forecaster(name, vectors, True)
        out[method(name, full_trust=True)] = forecaster(name, vectors, False)
    return out


def run_cold_start_bench(
    panel: DemandPanel,
    truth: np.ndarray | None,
    embeddings: dict[str, Embeddings],
    held_out: set[str],
    categories: dict[str, str],
    windows: int = 8,
    n_paths: int = 200,
    seed: int = 0,
) -> tuple[LaunchBacktest, dict[str, NeighbourFit]]:
    """The launch backtest with the visual neighbour forecasts of every embedding beside the attribute model's and
    the category average's; `categories` (SKU -> category) measures each embedding's category precision@1 on the
    `held_out` SKUs against the whole catalogue."""
    from shelfwise.demand.cold_start_backtest import run_launch_backtest

    fitted: dict[str, list[tuple[float, float]]] = {}
    others = neighbour_forecasters(embeddings, n_paths, seed, fitted)
    result = run_launch_backtest(panel, truth, windows=windows, n_paths=n_paths, seed=seed, others=others)
    fits = {
        name: NeighbourFit(
            [z for z, _ in fitted.get(name, [])],
            [s for _, s in fitted.get(name, [])],
            _category_precision(vectors, categories, held_out),
        )
        for name, vectors in embeddings.items()
    }
    return result, fits


def _category_precision(embeddings: Embeddings, categories: dict[str, str], held_out: set[str]) -> float:
    """Share of the held-out SKUs whose nearest other SKU (by cosine) has their category."""
    from shelfwise.visual.retrieval import nearest

    label = np.array([categories.get(s, "") for s in embeddings.skus])
    rows = np.flatnonzero([s in held_out for s in embeddings.skus]).astype(np.int64)
    if rows.size == 0 or len(embeddings.skus) < 2:
        return float("nan")
    top = nearest(embeddings.vectors[rows], embeddings.vectors, 1, exclude=rows)
    return float((label[top[:, 0]] == label[rows]).mean())


def catalogue_embeddings(
    catalogue: Catalogue, held_out: set[str], epochs: int, seed: int, console: Console
) -> tuple[dict[str, Embeddings], int, float]:
    """(embeddings by name, SKUs trained on, training seconds): the learned model trained on the catalogue minus
    the held-out SKUs, raw pixels and colour histograms."""
    from shelfwise.demand.visual_cold_start import Embeddings
    from shelfwise.visual.baselines import colour_histograms, raw_pixels
    from shelfwise.visual.embedding import EmbeddingSettings

    train = np.flatnonzero([s not in held_out for s in catalogue.skus]).astype(np.int64)
    settings = EmbeddingSettings(image_size=catalogue.images.shape[1], epochs=epochs, seed=seed)
    with console.status("training the embedding") as status:

        def progress(epoch: int, total: int, loss: float) -> None:
            status.update(f"training the embedding: epoch {epoch}/{total}, loss {loss:.3f}")

        started = time.perf_counter()
        model = settings.train(catalogue.subset(train), progress)
        seconds = time.perf_counter() - started
    vectors = {
        LEARNED: model.embed_images(catalogue.images),
        PIXELS: raw_pixels(catalogue.images),
        HISTOGRAM: colour_histograms(catalogue.images),
    }
    return {name: Embeddings(catalogue.skus, v) for name, v in vectors.items()}, len(train), seconds


def fits_table(bench: ColdStartBench) -> Table:
    table = Table(
        title="Neighbours per embedding: the credibility Z fitted at each window (the slope of established SKUs' "
        "sales multipliers on their neighbours' mean, clipped to [0, 1]) and category precision@1 of the launches",
    )
    for column in ("embedding", "Z mean", "Z min..max", "slope mean", "category P@1 (launch SKUs)"):
        table.add_column(column, justify="left" if column == "embedding" else "right")
    for name, fit in bench.fits.items():
        z = np.asarray(fit.credibility)
        table.add_row(
            name,
            f"{z.mean():.2f}" if z.size else "-",
            f"{z.min():.2f}..{z.max():.2f}" if z.size else "-",
            f"{np.nanmean(fit.slope):+.2f}" if np.isfinite(fit.slope).any() else "-",
            f"{fit.category_precision_at_1:.3f}",
        )
    return table


def key_line(bench: ColdStartBench) -> str:
    result = bench.backtest
    against = next(iter(result.scores))
    scores = result.scores[against][ALL]
    visual, attribute, average = scores[method(LEARNED)], scores[ATTRIBUTE_MODEL], scores[CATEGORY_AVERAGE]

    def wql(group: str, model: str) -> str:
        s = result.scores[against].get(group, {}).get(model)
        return f"{s.wql:.3f}" if s is not None else "-"

    ablation = ", ".join(f"{name} {scores[method(name)].wql:.3f}" for name in bench.fits if name != LEARNED)
    z = bench.fits[LEARNED].credibility
    return (
        f"cold-start: {result.series[ALL]:,} store x SKU launches ({result.skus[ALL]} SKUs) in "
        f"{len(result.cutoffs)} windows from {result.cutoffs[0]}; wQL against {against}: visual neighbours "
        f"{visual.wql:.3f} vs attribute model {attribute.wql:.3f} ({visual.wql / attribute.wql - 1:+.1%}) vs category "
        f"average {average.wql:.3f}; Z=1 {scores[method(LEARNED, True)].wql:.3f}; launched before "
        f"{wql(BEFORE, method(LEARNED))} vs {wql(BEFORE, ATTRIBUTE_MODEL)}, launching inside "
        f"{wql(INSIDE, method(LEARNED))} vs {wql(INSIDE, ATTRIBUTE_MODEL)}; bias {visual.bias:+.2f} vs "
        f"{attribute.bias:+.2f}; fitted Z {np.mean(z):.2f}; ablation (fitted Z) {ablation}; embedding "
        f"{bench.epochs} epochs on {bench.trained_skus} SKUs, {bench.train_seconds:.0f} s"
    )


def command(
    data: Annotated[str, typer.Option("--data", help=f"{DEFAULT_WORLD} or world:DIR (a synthetic world).")] = (
        DEFAULT_WORLD
    ),
    windows: Annotated[int, typer.Option(min=1, help="Windows of 28 days, ending with the data.")] = 8,
    paths: Annotated[int, typer.Option(min=20, help="Sample paths per series.")] = 200,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the embedding model.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the embedding's training and of the paths.")] = 0,
) -> None:
    """wQL, MASE, RMSSE, coverage and bias of cold starts from visual neighbours, the attribute model and the
    category average on launches, with neighbours by raw pixels and colour histograms as the ablation."""
    from shelfwise.bench.forecast import demand_frames, resolve_world, true_demand, world_holidays
    from shelfwise.bench.launches import launches_table
    from shelfwise.demand.backtest import window_cutoffs
    from shelfwise.demand.models import HORIZON
    from shelfwise.demand.series import build_panel
    from shelfwise.visual.catalogue import world_catalogue

    console = Console()
    label, world = resolve_world(data)
    started = time.perf_counter()
    with console.status("demand features (Spark)"):
        daily, static = demand_frames(world)
        panel = build_panel(daily, static, world_holidays(world))
        truth = true_demand(world, panel)
    catalogue = world_catalogue(world)
    console.print(
        f"{label}: {len(panel.keys):,} location x SKU series, {panel.start} .. {panel.end - dt.timedelta(days=1)}, "
        f"{len(catalogue)} product images (features {time.perf_counter() - started:.0f} s)"
    )
    first = (window_cutoffs(panel.end, HORIZON, windows)[0] - panel.start).days
    held_out = held_out_skus(panel, first)
    embeddings, trained, seconds = catalogue_embeddings(catalogue, held_out, epochs, seed, console)
    console.print(f"embedding: {epochs} epochs on {trained} SKUs in {seconds:.0f} s; {len(held_out)} SKUs held out")
    categories = dict(zip(catalogue.skus, catalogue.category, strict=True))
    with console.status("forecasting the launches of every window"):
        result, fits = run_cold_start_bench(panel, truth, embeddings, held_out, categories, windows, paths, seed)
    bench = ColdStartBench(result, fits, len(held_out), trained, epochs, seconds)
    for against in result.scores:
        console.print(launches_table(result, against))
    console.print(fits_table(bench))
    console.print(key_line(bench), soft_wrap=True)
