"""Processing step: score the trained embedding and the baselines on the held-out SKUs, export it to ONNX, package it.

The model is checked to have been trained on exactly the split's training SKUs (none held out). Every method (the
model, raw pixels at full size and downscaled, colour histograms) is scored on the same held-out queries
(`shelfwise.visual.evaluation`): similar products (precision@1/@10 and mAP@10 by category, from the catalogue image,
and precision@1 from a shopper photo) and find this product from a photo (recall@1/@10). The gate reads the margins of
the model over the best baseline in `margins` (see `shelfwise.visual.evaluation.GATED` for which figures and why).

The model is exported to ONNX and loaded the way the API loads it (`shelfwise.visual.query_embedder.QueryEmbedder`);
its embeddings of the held-out catalogue images must equal PyTorch's within `--onnx-tolerance`, else the step fails.
Writes `evaluation/evaluation.json` and `package/model.tar.gz` (model.onnx, the PyTorch weights and settings,
training.json): what is registered, and what the index build embeds with.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from step_io import install_wheelhouse, one_archive, pack_folder, sha256_of, unpack_archive, write_json

if TYPE_CHECKING:
    import numpy as np

    from shelfwise.visual.embedding import EmbeddingModel

BASE = Path("/opt/ml/processing")
EVALUATION_FILE = "evaluation.json"
ONNX_FILE = "model.onnx"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=BASE / "model", help="holds the training step's model.tar.gz")
    parser.add_argument("--catalogue-dir", type=Path, default=BASE / "catalogue")
    parser.add_argument("--wheels-dir", type=Path, default=BASE / "input" / "wheels")
    parser.add_argument("--evaluation-dir", type=Path, default=BASE / "evaluation")
    parser.add_argument("--package-dir", type=Path, default=BASE / "package")
    parser.add_argument("--seed", type=int, default=0, help="of the evaluation's shopper photos")
    parser.add_argument("--onnx-tolerance", type=float, default=1e-4)
    return parser.parse_args(argv)


def onnx_difference(onnx_model: bytes, model: EmbeddingModel, images: np.ndarray) -> float:
    """Largest |ONNX Runtime - PyTorch| over the embeddings of `images`, one image at a time as the API embeds."""
    import numpy as np

    from shelfwise.visual.embedding import to_model_input
    from shelfwise.visual.query_embedder import QueryEmbedder

    embedder = QueryEmbedder.from_bytes(onnx_model)
    pixels = to_model_input(images)
    served = np.stack([embedder.embed(pixels[i : i + 1]) for i in range(len(pixels))])
    return float(np.abs(served - model.embed(pixels)).max())


def main(argv: list[str]) -> str:
    args = parse_args(argv)
    install_wheelhouse(args.wheels_dir)
    from shelfwise.visual.embedding import EmbeddingModel, export_onnx
    from shelfwise.visual.evaluation import (
        LEARNED,
        baseline_methods,
        evaluation_photos,
        margins_over_baselines,
        score_method,
    )
    from shelfwise.visual.training_data import load_catalogue, load_split

    work = args.evaluation_dir.parent / "evaluate-work"
    trained = one_archive(args.model_dir)
    model_dir = unpack_archive(trained, work / "model")
    model = EmbeddingModel.load(model_dir)
    training = json.loads((model_dir / "training.json").read_text(encoding="utf-8"))
    catalogue = load_catalogue(args.catalogue_dir)
    manifest = load_split(args.catalogue_dir)
    split = manifest.rows(catalogue)
    if set(training["skus"]) != set(manifest.train):
        held_out = sorted(set(training["skus"]) & set(manifest.held_out))
        raise SystemExit(
            f"the model was not trained on the split's training SKUs: {len(held_out)} of them are held out "
            f"(e.g. {held_out[:3]}), {len(training['skus'])} trained on against {len(manifest.train)} in the split"
        )
    meta = json.loads((args.catalogue_dir / "meta.json").read_text(encoding="utf-8"))

    photos = evaluation_photos(catalogue, args.seed)
    learned = score_method(LEARNED, model.embed_images, catalogue, split, photos)
    baselines = [
        score_method(name, embed, catalogue, split, photos)
        for name, embed in baseline_methods(catalogue.images.shape[1])
    ]
    margins = margins_over_baselines(learned, baselines)

    package = work / "package"
    shutil.rmtree(package, ignore_errors=True)
    shutil.copytree(model_dir, package)
    onnx_model = export_onnx(model, package / ONNX_FILE).read_bytes()
    difference = onnx_difference(onnx_model, model, catalogue.images[split.test])
    if difference > args.onnx_tolerance:
        raise SystemExit(f"ONNX Runtime's embeddings differ from PyTorch's by {difference:.2e} > {args.onnx_tolerance}")
    archive = pack_folder(package, args.package_dir / "model.tar.gz")
    model_version = f"{meta['snapshot']}-{sha256_of(trained)[:8]}"
    evaluation = {
        "visual": learned.figures(),
        "baselines": {b.method: b.figures() for b in baselines},
        "margins": margins,
        "products": len(catalogue),
        "held_out": len(manifest.held_out),
        "categories": len(catalogue.categories),
        "image_size": int(catalogue.images.shape[1]),
        "epochs": model.settings.epochs,
        "onnx_max_abs_diff": difference,
        "model_version": model_version,
        "artifact": {"sha256": sha256_of(archive)},
        "seconds": {"training": training["seconds"]},
    }
    write_json(evaluation, args.evaluation_dir / EVALUATION_FILE)
    figures = learned.figures()
    return (
        f"held-out SKUs: photo recall@1 {figures['photo_recall_at_1']:.3f} "
        f"({margins['photo_recall_at_1']:+.3f} over the best baseline), similar precision@1 from a photo "
        f"{figures['similar_from_photo_precision_at_1']:.3f} ({margins['similar_from_photo_precision_at_1']:+.3f}); "
        f"ONNX vs PyTorch {difference:.1e}"
    )


if __name__ == "__main__":
    print(main(sys.argv[1:]))
