"""`shelfwise bench knn` on a small large set: it runs end to end, the index class finds exactly what the bare faiss
call finds, and the key line names the ef_search the recall target picks."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from shelfwise.bench.knn import DataSet, Result, SweepRow, key_line
from shelfwise.cli import app
from shelfwise.visual.index import HnswParams


def test_the_bench_runs_and_the_index_class_finds_what_bare_faiss_finds() -> None:
    result = CliRunner().invoke(
        app, ["bench", "knn", "--vectors", "3000", "--queries", "30", "--ef-search", "16,64"], env={"COLUMNS": "200"}
    )

    assert result.exit_code == 0, result.output
    assert "500 x 128 random unit vectors (no trained embedding given)" in result.output
    assert "3,000 x 128 clustered" in result.output
    assert result.output.strip().splitlines()[-1].startswith("knn: ")
    cells = [line.split("│")[1:4] for line in result.output.splitlines() if line.startswith("│") and "x │" in line]
    unfiltered = [row for row in cells if row[0].strip().isdigit()]
    assert len(unfiltered) == 4  # two ef_search values on each data set
    for _, ours, bare in unfiltered:
        assert float(ours) == float(bare)  # the same graph, the same parameters: the same neighbours
    filtered = [row for row in cells if "pass filter" in row[0]]
    assert len(filtered) == 2
    assert all(float(ours) >= float(bare) for _, ours, bare in filtered)  # exact scans, or the same graph walk


def test_the_key_line_picks_the_smallest_ef_search_reaching_the_recall_target() -> None:
    empty = np.zeros((1, 2), dtype=np.float32)
    rows = [SweepRow(16, 0.90, 0.90, 900.0, 1000.0), SweepRow(32, 0.985, 0.985, 600.0, 1000.0)]
    rows.append(SweepRow(64, 0.999, 0.999, 300.0, 1000.0))
    result = Result(DataSet("big", empty, empty), 12.0, rows, 0)

    assert result.chosen() == rows[1]
    line = key_line([result], HnswParams(ef_search=64))
    assert "ef_search 32: recall@10 0.985 at 600 q/s = 0.60x bare faiss" in line
    assert "met; HnswParams default ef_search 64 (this run suggests 32)" in line
    slow = Result(DataSet("big", empty, empty), 12.0, [SweepRow(16, 0.99, 0.99, 400.0, 1000.0)], 0)
    assert "NOT met" in key_line([slow], HnswParams(ef_search=16))
