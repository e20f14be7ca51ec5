"""`shelfwise world load ...`: prints the accounting, and fails with a message on a bad source."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from shelfwise.cli.world_load import app
from shelfwise.loaders.fashion_mnist import COLUMNS

runner = CliRunner(env={"COLUMNS": "200"})


def test_fashion_mnist_load_prints_the_reconciliation(tmp_path: Path) -> None:
    source = tmp_path / "fm.csv"
    source.write_text("\n".join(",".join(row) for row in [COLUMNS, ["3", *["9"] * 784], ["99", *["0"] * 784]]))
    result = runner.invoke(app, ["fashion-mnist", "--source", str(source), "--out", str(tmp_path / "world")])
    assert result.exit_code == 0, result.output
    assert "quarantine/unknown_label" in result.output
    assert "1 rows loaded, 1 quarantined" in result.output
    assert (tmp_path / "world" / "images" / "SKU00001.png").is_file()


def test_missing_source_exits_with_a_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["online-retail", "--source", str(tmp_path / "nope.csv"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope.csv does not exist" in result.output


def test_missing_column_is_named(tmp_path: Path) -> None:
    source = tmp_path / "retail.csv"
    source.write_text("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,Country\n")
    result = runner.invoke(app, ["online-retail", "--source", str(source), "--out", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "missing required column(s): CustomerID" in result.output
