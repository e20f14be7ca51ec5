"""`shelfwise bench serving visual` end to end at a tiny size: every timed call is a 200 from the real handler (the
bench refuses error answers), and the cold starts answer in fresh interpreters without the packages the bundle
lacks."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from shelfwise.cli.bench import app


@pytest.mark.slow
def test_the_bench_times_both_routes_beside_their_floors_and_ends_with_the_key_figures() -> None:
    options = ["--requests", "10", "--products", "20", "--epochs", "1", "--photos", "2", "--cold-runs", "1"]
    result = CliRunner().invoke(app, ["serving", "visual", *options], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for measurement in (
        "GET /products/{sku}/similar (handler)",
        "POST /search/visual, 64x64 PNG body (handler)",
        "POST /search/visual, 1024x1024 JPEG body (handler)",
        "ONNX Runtime embedding alone",
        "bare faiss HNSW search of the stored vector",
        "floor: import onnxruntime + faiss",
    ):
        assert measurement in result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("visual serving (20 products, dim 128): similar p50 ")
    share = re.search(r"the ONNX embedding [\d.]+ ms is (\d+)% of the PNG search", key)
    assert share is not None, key
    assert 0 < int(share.group(1)) < 100
    assert re.search(r"cold init to the first search [\d.]+ s bundle \([\d.]+x the floor [\d.]+ s\)", key), key
