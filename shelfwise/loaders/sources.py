"""Where the public data sets live by default: `<repo>/../shared/data/`, beside the repository, never inside it."""

from __future__ import annotations

from pathlib import Path

import shelfwise

REPO_ROOT = Path(shelfwise.__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ONLINE_RETAIL_CSV = SHARED_DATA / "online_retail" / "online_retail.csv.gz"
FASHION_MNIST_CSV = SHARED_DATA / "fashion_mnist" / "fashion_mnist_test_1000.csv.gz"
