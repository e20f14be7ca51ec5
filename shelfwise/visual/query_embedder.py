"""The embedding model as the API runs it: the exported ONNX graph in ONNX Runtime, one image at a time, no torch.

The graph's contract is `shelfwise.visual.embedding`'s (input `images`, float32 (batch, 3, size, size) in [0, 1],
output `embeddings` (batch, dim), L2-normalised); the side and the dimension are read from the graph itself, so the
API cannot lay out an image at another size than the one the model was exported for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shelfwise.visual.images import ModelInput
    from shelfwise.visual.index import FloatArray


class ModelContractError(ValueError):
    """The ONNX graph does not have the embedding model's input or output; the message says which part."""


@dataclass(frozen=True)
class QueryEmbedder:
    """An ONNX Runtime session of the embedding model and the shape it takes."""

    session: Any
    input_name: str
    output_name: str
    image_size: int
    dimension: int

    @classmethod
    def from_bytes(cls, model: bytes, threads: int = 1) -> QueryEmbedder:
        """A session of the serialised ONNX model. One thread: a Lambda of 1 GB has well under two vCPUs, and
        one query is too small to split."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own untyped errors for a file that is not a model
            raise ModelContractError(f"the bytes are not a loadable ONNX model: {error}") from None
        (image,), (embedding,) = _single(session.get_inputs(), "input"), _single(session.get_outputs(), "output")
        shape, out_shape = list(image.shape), list(embedding.shape)
        if image.type != "tensor(float)" or len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
            raise ModelContractError(f"the input must be float (batch, 3, size, size), got {image.type} {shape}")
        if not isinstance(shape[2], int) or len(out_shape) != 2 or not isinstance(out_shape[1], int):
            raise ModelContractError(f"the image side and the embedding size must be fixed, got {shape} -> {out_shape}")
        return cls(session, image.name, embedding.name, shape[2], out_shape[1])

    def embed(self, pixels: ModelInput) -> FloatArray:
        """The (dimension,) embedding of one image laid out by `shelfwise.visual.images.to_model_input`."""
        if pixels.shape != (1, 3, self.image_size, self.image_size) or pixels.dtype != np.float32:
            raise ModelContractError(
                f"expected float32 (1, 3, {self.image_size}, {self.image_size}), got {pixels.dtype} {pixels.shape}"
            )
        (out,) = self.session.run([self.output_name], {self.input_name: pixels})
        vector: FloatArray = np.asarray(out[0], dtype=np.float32)
        return vector


def _single(nodes: list[Any], what: str) -> list[Any]:
    if len(nodes) != 1:
        raise ModelContractError(f"the embedding model has one {what}, this graph has {len(nodes)}")
    return nodes
