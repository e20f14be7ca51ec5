"""Training step: the image embedding CNN (`shelfwise.visual.embedding`) from scratch on the training SKUs.

Only the SKUs the split manifest puts on the training side are seen (their studio images and simulated shopper photos
of them); the held-out SKUs are the evaluation's. Container contract: the `catalogue` channel (`SM_CHANNEL_CATALOGUE`),
the model to `SM_MODEL_DIR`, hyperparameters from `hyperparameters.json` and `--name value` arguments (arguments win).
Writes the model (`EmbeddingModel.save`) and `training.json`, which names the SKUs trained on so that the evaluation
can check that none of them is held out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from step_io import hyperparameters_file, install_wheelhouse

TRAINING_FILE = "training.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    channel = os.environ.get
    parser.add_argument(
        "--catalogue", type=Path, default=Path(channel("SM_CHANNEL_CATALOGUE", "/opt/ml/input/data/catalogue"))
    )
    parser.add_argument("--wheels", type=Path, default=Path(channel("SM_CHANNEL_WHEELS", "/opt/ml/input/data/wheels")))
    parser.add_argument("--model-dir", type=Path, default=Path(channel("SM_MODEL_DIR", "/opt/ml/model")))
    parser.add_argument("--epochs", type=int, default=90, help="0 leaves the network as initialised")
    parser.add_argument("--category_weight", type=float, default=2.0, help="of the category loss")
    parser.add_argument("--scene_probability", type=float, default=0.9, help="of a cluttered scene in a photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(**hyperparameters_file(parser))
    return parser.parse_args(argv)


def main(argv: list[str]) -> str:
    args = parse_args(argv)
    install_wheelhouse(args.wheels)
    from shelfwise.visual.augment import PhotoSettings
    from shelfwise.visual.embedding import EmbeddingSettings
    from shelfwise.visual.training_data import load_catalogue, load_split

    catalogue = load_catalogue(args.catalogue)
    split = load_split(args.catalogue)
    training = catalogue.subset(split.rows(catalogue).train)
    settings = EmbeddingSettings(
        image_size=catalogue.images.shape[1],
        epochs=args.epochs,
        seed=args.seed,
        category_weight=args.category_weight,
        photo=PhotoSettings(scene_probability=args.scene_probability),
    )
    started = time.perf_counter()
    model = settings.train(training, lambda epoch, total, loss: print(f"epoch {epoch}/{total}: loss {loss:.4f}"))
    seconds = round(time.perf_counter() - started, 1)
    model.save(args.model_dir)
    document = {"skus": list(training.skus), "seconds": seconds, "settings": settings.to_json()}
    (args.model_dir / TRAINING_FILE).write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")
    final = f", final loss {model.losses[-1]:.4f}" if model.losses else " (untrained)"
    return f"embedding trained on {len(training):,} SKUs for {args.epochs} epochs in {seconds} s{final}"


if __name__ == "__main__":
    print(main(sys.argv[1:]))
