"""Exact cosine search, the retrieval metrics on hand-built cases with known answers, and the baselines."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.visual.baselines import colour_histograms, raw_pixels
from shelfwise.visual.retrieval import l2_normalise, nearest, photo_scores, similar_product_scores


def _clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters of five vectors, one per category."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 8, dtype=np.float32)
    category = np.repeat(np.arange(3), 5)
    return l2_normalise(centres[category] + 0.05 * rng.standard_normal((15, 8))), category


def test_nearest_excludes_the_query_itself_and_orders_by_cosine() -> None:
    catalogue = l2_normalise(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.5, 0.5]], dtype=np.float32))
    assert nearest(catalogue[:1], catalogue, 2).tolist() == [[0, 1]]
    assert nearest(catalogue[:1], catalogue, 2, exclude=np.array([0])).tolist() == [[1, 3]]
    with pytest.raises(ValueError, match="k must be"):
        nearest(catalogue[:1], catalogue, 4, exclude=np.array([0]))


def test_precision_is_one_when_every_neighbour_shares_the_category_and_drops_when_shuffled() -> None:
    vectors, category = _clusters()
    rows = np.arange(15)
    perfect = similar_product_scores(vectors, category, rows, k=4)
    assert perfect.precision_at_1 == perfect.precision_at_10 == perfect.map_at_10 == 1.0
    shuffled = similar_product_scores(vectors[np.random.default_rng(1).permutation(15)], category, rows, k=4)
    assert shuffled.precision_at_1 < 0.7
    assert shuffled.map_at_10 < 0.7


def test_average_precision_on_a_hand_ranked_case() -> None:
    # Query 0 (category 0) sees: category 1, category 0, category 1 at ranks 1..3; one other category-0 item exists.
    vectors = l2_normalise(np.array([[1, 0], [0.99, 0.14], [0.9, 0.44], [0.7, 0.71]], dtype=np.float32))
    category = np.array([0, 1, 0, 1])
    scores = similar_product_scores(vectors, category, np.array([0]), k=3)
    assert scores.precision_at_1 == 0.0
    assert scores.precision_at_10 == pytest.approx(1 / 3)
    assert scores.map_at_10 == pytest.approx(0.5)  # precision@2 = 1/2, over min(3, 1) relevant items


def test_photo_queries_search_the_whole_catalogue() -> None:
    catalogue, _ = _clusters()
    photos = l2_normalise(catalogue + 0.01)
    scores = photo_scores(photos, catalogue, np.arange(15), k=3)
    assert scores.recall_at_1 == 1.0
    wrong = photo_scores(photos, catalogue, np.roll(np.arange(15), 5), k=3)
    assert wrong.recall_at_1 == wrong.recall_at_10 == 0.0


def test_raw_pixels_are_unit_vectors_of_the_downscaled_image() -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    vectors = raw_pixels(images)
    assert vectors.shape == (3, 16 * 16 * 3)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert raw_pixels(np.zeros((1, 28, 28, 3), dtype=np.uint8)).shape == (1, 14 * 14 * 3)


def test_a_single_colour_image_fills_one_histogram_cell() -> None:
    image = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    image[..., 0] = 255
    histogram = colour_histograms(image)
    assert histogram.shape == (1, 512)
    assert np.flatnonzero(histogram[0]).tolist() == [7 * 64]
    assert histogram[0, 7 * 64] == pytest.approx(1.0)
