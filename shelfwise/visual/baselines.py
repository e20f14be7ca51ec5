"""The embeddings a learned model must beat: raw pixels and colour histograms, as unit vectors for cosine search."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shelfwise.visual.retrieval import FloatArray, l2_normalise

UInt8Array = npt.NDArray[np.uint8]


def raw_pixels(images: UInt8Array, side: int | None = None) -> FloatArray:
    """(n, side x side x 3) unit vectors: the images averaged down to side x side (the side must divide the
    images'; by default the image side halved while above 16), flattened."""
    n, height, width, _ = images.shape
    if side is None:
        side = height
        while side > 16 and side % 2 == 0:
            side //= 2
    if height % side or width % side:
        raise ValueError(f"side {side} must divide the image size {height}x{width}")
    small = images.reshape(n, side, height // side, side, width // side, 3).mean(axis=(2, 4))
    return l2_normalise(small.reshape(n, -1))


def colour_histograms(images: UInt8Array, bins: int = 8) -> FloatArray:
    """(n, bins^3) unit vectors: the joint RGB histogram with `bins` levels a channel, square-rooted (so that the
    cosine of two is their Bhattacharyya coefficient, and the large background bin does not swamp the rest)."""
    n = images.shape[0]
    levels = images.astype(np.int64) * bins // 256
    cells = (levels[..., 0] * bins + levels[..., 1]) * bins + levels[..., 2]
    counts = np.stack([np.bincount(row, minlength=bins**3) for row in cells.reshape(n, -1)])
    return l2_normalise(np.sqrt(counts / counts.sum(axis=1, keepdims=True)))
