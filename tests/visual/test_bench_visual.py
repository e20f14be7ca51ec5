"""`shelfwise bench visual` end to end on a tiny catalogue: every method scored on the same queries, the ONNX check,
the table and the key line; and `--data` refusing what it does not know."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from rich.console import Console

from shelfwise.bench.visual import LEARNED, key_line, resolve_catalogue, results_table, run_bench
from shelfwise.visual.catalogue import Catalogue
from shelfwise.visual.embedding import EmbeddingSettings
from shelfwise.world.images import Style, render


@pytest.mark.slow
def test_the_bench_scores_every_method_on_held_out_products_and_checks_onnx(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images, category = [], []
    for c in (0, 7, 9, 13):
        for _ in range(6):
            style = Style(float(rng.random()), 0.7, 0.8, 1.0, 0.0, 0.0, 0.6, 0.0, False, 0.0, 0.0)
            images.append(render(c, style))
            category.append(f"c{c}")
    n = len(images)
    catalogue = Catalogue(np.stack(images), tuple(f"S{i}" for i in range(n)), tuple(category), ("d",) * n, ({},) * n)
    settings = EmbeddingSettings(dim=8, width=4, epochs=1, batch_size=16)
    bench = run_bench("tiny", catalogue, settings, tmp_path)
    assert [s.method for s in bench.scores] == [
        LEARNED, "pixels 64x64", "pixels downscaled", "RGB histogram 8^3"
    ]  # fmt: skip
    assert bench.held_out == 8  # round(0.3 x 6) = 2 of each category
    for scores in bench.scores:
        assert scores.similar.queries == scores.similar_from_photo.queries == scores.photo_held_out.queries == 8
        assert scores.photo_trained.queries == 16
    assert bench.method(LEARNED).dim == 8
    assert bench.onnx_max_abs_diff < 1e-4
    assert (tmp_path / "model.onnx").is_file()
    console = Console(width=250, record=True)
    console.print(results_table(bench))
    assert "RGB histogram 8^3" in console.export_text()
    assert key_line(bench).startswith("visual (tiny, 24 products, 8 held out): similar P@1 learned ")


def test_unknown_data_is_refused_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(typer.BadParameter, match="expected world, fashion-mnist or world:DIR"):
        resolve_catalogue("mnist")
    with pytest.raises(typer.BadParameter, match=r"no products\.parquet"):
        resolve_catalogue(f"world:{tmp_path}")


def test_fashion_mnist_trains_without_scenes_and_the_options_still_win() -> None:
    from shelfwise.bench.visual import training_settings
    from shelfwise.visual.embedding import EmbeddingSettings

    world = training_settings("world", 64, None, 0, None, None)
    assert world.category_weight == EmbeddingSettings().category_weight
    assert world.photo.scene_probability > 0
    fashion = training_settings("fashion-mnist", 28, None, 0, None, None)
    assert fashion.category_weight == 4.0
    assert fashion.photo.scene_probability == 0
    assert fashion.photo.clutter == 0
    chosen = training_settings("fashion-mnist", 28, 5, 1, 1.5, True)
    assert (chosen.category_weight, chosen.epochs, chosen.seed) == (1.5, 5, 1)
    assert chosen.photo.scene_probability > 0
