"""Exact cosine search and the retrieval metrics of both visual tasks.

- Similar products: each query is a catalogue image; it searches the catalogue minus itself, and a result is relevant
  when it has the query's category. precision@k is the share of relevant results in the top k; AP@10 averages
  precision@i over the ranks i <= 10 holding a relevant result, divided by min(10, the relevant products there are).
- Find this product from a photo: each query is a photo of a catalogue product; it searches the whole catalogue, and
  recall@k is the share of photos whose product is among the top k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SimilarScores:
    """Similar-product retrieval by category, means over the queries."""

    precision_at_1: float
    precision_at_10: float
    map_at_10: float
    queries: int


@dataclass(frozen=True)
class PhotoScores:
    """Product-from-photo retrieval, shares of photos whose product was found."""

    recall_at_1: float
    recall_at_10: float
    queries: int


def l2_normalise(vectors: npt.NDArray[np.floating]) -> FloatArray:
    """Rows scaled to unit length (a zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: FloatArray = vectors / np.where(norms > 0, norms, 1.0)
    return out


def nearest(queries: FloatArray, catalogue: FloatArray, k: int, exclude: IntArray | None = None) -> IntArray:
    """(n_queries, k) catalogue rows by decreasing cosine similarity (rows are unit vectors); `exclude[i]`, if
    given, is a catalogue row query i may not return (itself)."""
    if queries.shape[1] != catalogue.shape[1]:
        raise ValueError(f"queries have dimension {queries.shape[1]}, the catalogue {catalogue.shape[1]}")
    available = catalogue.shape[0] - (exclude is not None)
    if not 1 <= k <= available:
        raise ValueError(f"k must be in 1..{available}, got {k}")
    scores = queries @ catalogue.T
    if exclude is not None:
        scores[np.arange(len(queries)), exclude] = -np.inf
    # Ties broken by catalogue row, so results do not depend on the sort's internals.
    top: IntArray = np.lexsort((np.broadcast_to(np.arange(catalogue.shape[0]), scores.shape), -scores), axis=1)[:, :k]
    return top.astype(np.int64)


def similar_product_scores(
    catalogue: FloatArray, category: IntArray, rows: IntArray, queries: FloatArray | None = None, k: int = 10
) -> SimilarScores:
    """Category precision@1, precision@k and mAP@k of the products at catalogue `rows`, each searching the
    catalogue minus itself with its catalogue vector or, if given, with `queries[i]` (e.g. a photo of it)."""
    vectors = catalogue[rows] if queries is None else queries
    top = nearest(vectors, catalogue, k, exclude=rows)
    relevant = category[top] == category[rows][:, None]
    precision_at = np.cumsum(relevant, axis=1) / np.arange(1, k + 1)
    available = np.bincount(category)[category[rows]] - 1
    average_precision = (precision_at * relevant).sum(axis=1) / np.maximum(np.minimum(available, k), 1)
    return SimilarScores(
        precision_at_1=float(relevant[:, 0].mean()),
        precision_at_10=float(relevant.mean()),
        map_at_10=float(average_precision.mean()),
        queries=len(rows),
    )


def photo_scores(photos: FloatArray, catalogue: FloatArray, products: IntArray, k: int = 10) -> PhotoScores:
    """recall@1 and recall@k of photos whose product is catalogue row `products[i]`, searching the whole
    catalogue."""
    top = nearest(photos, catalogue, k)
    found = top == products[:, None]
    return PhotoScores(
        recall_at_1=float(found[:, 0].mean()), recall_at_10=float(found.any(axis=1).mean()), queries=len(products)
    )
