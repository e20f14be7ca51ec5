"""The embedding model on a tiny catalogue of rendered products (3 categories x 8 SKUs, 32x32): training lowers the
loss and beats the untrained network, is deterministic, survives save/load, exports to ONNX that ONNX Runtime runs
with the same results, and refuses input that breaks its contract."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shelfwise.visual.augment import shopper_photos
from shelfwise.visual.catalogue import Catalogue
from shelfwise.visual.embedding import (
    EmbeddingModel,
    EmbeddingSettings,
    InputContractError,
    export_onnx,
    to_model_input,
)
from shelfwise.visual.retrieval import photo_scores, similar_product_scores
from shelfwise.world.images import Style, render

SETTINGS = EmbeddingSettings(image_size=32, dim=16, width=8, epochs=12, batch_size=24, lr=1e-2, seed=5)


def _tiny_catalogue() -> Catalogue:
    rng = np.random.default_rng(0)
    images, category = [], []
    for c, hue in ((7, 0.15), (4, 0.35), (12, 0.6)):  # ball, bottle, tree
        for _ in range(8):
            style = Style(
                hue=float(hue + rng.normal(0, 0.03)) % 1, saturation=float(rng.uniform(0.45, 0.85)),
                value=float(rng.uniform(0.55, 0.9)), scale=float(rng.uniform(0.9, 1.08)), dx=0.0, dy=0.0,
                frequency=0.6, phase=float(rng.uniform(0, 6)), badge=bool(rng.random() < 0.5), badge_x=0.0,
                badge_y=0.0,
            )  # fmt: skip
            images.append(render(c, style).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)).astype(np.uint8))
            category.append(str(c))
    n = len(images)
    return Catalogue(np.stack(images), tuple(f"SKU{i:05d}" for i in range(n)), tuple(category), ("d",) * n, ({},) * n)


@pytest.fixture(scope="module")
def tiny() -> Catalogue:
    return _tiny_catalogue()


#: What the training of `trained` reported after each epoch: (epoch, epochs, loss).
PROGRESS: list[tuple[int, int, float]] = []


@pytest.fixture(scope="module")
def trained(tiny: Catalogue) -> EmbeddingModel:
    PROGRESS.clear()
    return SETTINGS.train(tiny, lambda epoch, total, loss: PROGRESS.append((epoch, total, loss)))


@pytest.fixture(scope="module")
def untrained(tiny: Catalogue) -> EmbeddingModel:
    return replace(SETTINGS, epochs=0).train(tiny)


@pytest.mark.slow
def test_training_lowers_the_loss_and_reports_each_epoch(trained: EmbeddingModel) -> None:
    assert [(e, total) for e, total, _ in PROGRESS] == [(e, SETTINGS.epochs) for e in range(1, SETTINGS.epochs + 1)]
    assert tuple(loss for _, _, loss in PROGRESS) == trained.losses
    assert trained.losses[-1] < 0.7 * trained.losses[0]


@pytest.mark.slow
def test_the_trained_embedding_beats_the_untrained_network(
    tiny: Catalogue, trained: EmbeddingModel, untrained: EmbeddingModel
) -> None:
    photos = shopper_photos(tiny.images, np.random.default_rng(99))
    rows = np.arange(len(tiny))

    def scores(model: EmbeddingModel) -> tuple[float, float]:
        catalogue, queries = model.embed_images(tiny.images), model.embed_images(photos)
        similar = similar_product_scores(catalogue, tiny.category_codes, rows, queries)
        return similar.precision_at_1, photo_scores(queries, catalogue, rows).recall_at_10

    (similar_trained, recall_trained), (similar_untrained, recall_untrained) = scores(trained), scores(untrained)
    assert similar_trained >= similar_untrained + 0.2
    assert recall_trained >= recall_untrained + 0.2


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed(tiny: Catalogue, trained: EmbeddingModel) -> None:
    again = SETTINGS.train(tiny)
    assert np.array_equal(again.embed_images(tiny.images), trained.embed_images(tiny.images))


@pytest.mark.slow
def test_save_and_load_give_identical_embeddings(tmp_path: Path, tiny: Catalogue, trained: EmbeddingModel) -> None:
    loaded = EmbeddingModel.load(trained.save(tmp_path / "model"))
    assert loaded.settings == trained.settings
    assert loaded.categories == trained.categories == ("12", "4", "7")
    assert np.array_equal(loaded.embed_images(tiny.images), trained.embed_images(tiny.images))


def test_loading_an_empty_folder_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"settings\.json missing"):
        EmbeddingModel.load(tmp_path)


@pytest.mark.slow
def test_onnx_runtime_and_pytorch_agree_with_any_batch_size(
    tmp_path: Path, tiny: Catalogue, trained: EmbeddingModel
) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(export_onnx(trained, tmp_path / "model.onnx")))
    inputs = to_model_input(shopper_photos(tiny.images, np.random.default_rng(1)))
    for batch in (inputs[:1], inputs[:5], inputs):
        onnx = session.run(["embeddings"], {"images": batch})[0]
        torch_out = trained.embed(batch)
        assert onnx.shape == (len(batch), SETTINGS.dim)
        assert np.abs(onnx - torch_out).max() < 1e-4
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("images", "problem"),
    [
        (np.zeros((3, 32, 32), dtype=np.float32), "4-D"),
        (np.zeros((2, 32, 32, 3), dtype=np.float32), "3 channels"),
        (np.zeros((2, 3, 64, 64), dtype=np.float32), "must be 32x32, got 64x64"),
        (np.zeros((2, 3, 32, 32), dtype=np.float64), "float32"),
        (np.full((2, 3, 32, 32), 255.0, dtype=np.float32), r"in \[0, 1\]"),
    ],
)
def test_input_that_breaks_the_contract_is_refused_naming_the_problem(
    untrained: EmbeddingModel, images: np.ndarray, problem: str
) -> None:
    with pytest.raises(InputContractError, match=problem):
        untrained.embed(images)


def test_training_images_of_the_wrong_size_are_refused(tiny: Catalogue) -> None:
    with pytest.raises(InputContractError, match="must be 64x64, got 32x32"):
        EmbeddingSettings(image_size=64, epochs=0).train(tiny)


def test_settings_round_trip_through_json() -> None:
    assert EmbeddingSettings.from_json(SETTINGS.to_json()) == SETTINGS
