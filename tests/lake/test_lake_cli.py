"""`shelfwise lake ls / ingest` against a real moto server, and the message when there is no lake to reach."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shelfwise.cli.lake import app
from shelfwise.config import settings
from shelfwise.lake import Lake

runner = CliRunner(env={"COLUMNS": "200"})


def test_ingest_then_ls_lists_keys_and_sizes(lake: Lake, small_world: Any) -> None:
    ingested = runner.invoke(app, ["ingest", str(small_world.root)])
    assert ingested.exit_code == 0, ingested.output
    assert "order_lines" in ingested.output
    assert "product_images" in ingested.output

    listed = runner.invoke(app, ["ls", "raw/stores/"])
    assert listed.exit_code == 0, listed.output
    size = next(lake.list("raw/stores/")).size
    assert "raw/stores/dt=2024-01-03/part-00000.parquet" in listed.output
    assert f"{size / 1024:,.1f} KiB" in listed.output


def test_ls_aggregates_by_folder_when_there_are_many_objects(lake: Lake, small_world: Any) -> None:
    runner.invoke(app, ["ingest", str(small_world.root)])
    listed = runner.invoke(app, ["ls", "raw/order_lines/", "--limit", "2"])
    assert listed.exit_code == 0, listed.output
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        assert f"raw/order_lines/dt={day}/" in listed.output
    assert "part-00000" not in listed.output
    assert "4 objects; --all lists every key" in listed.output


def test_summary_counts_objects_per_zone(lake: Lake, small_world: Any) -> None:
    runner.invoke(app, ["ingest", str(small_world.root)])
    objects = sum(1 for _ in lake.list("raw/"))
    summary = runner.invoke(app, ["ls", "--summary"])
    assert summary.exit_code == 0, summary.output
    raw_line = next(line for line in summary.output.splitlines() if " raw " in line)
    assert f" {objects} " in raw_line


def test_ingest_of_a_folder_that_is_no_world_fails_with_a_message(lake: Lake, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path)])
    assert result.exit_code == 2
    assert "manifest.json is missing" in result.output


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.cache_clear()
    yield
    settings.cache_clear()


def test_without_endpoint_or_credentials_ls_says_so(no_aws: None) -> None:
    result = runner.invoke(app, ["ls"])
    assert result.exit_code == 1
    assert "no lake to reach: AWS_ENDPOINT_URL is not set and no AWS credentials were found" in result.output
    assert "Traceback" not in result.output


def test_unreachable_endpoint_is_one_line_not_a_traceback(no_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    settings.cache_clear()
    result = runner.invoke(app, ["ls"])
    assert result.exit_code == 1
    assert "error:" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
