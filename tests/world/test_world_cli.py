"""`shelfwise world generate` and `shelfwise bench world`: they print what they did, and refuse bad scales."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shelfwise.cli import app
from shelfwise.config import settings

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def work_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SHELFWISE_WORK_DIR", str(tmp_path / "work"))
    settings.cache_clear()
    yield tmp_path / "work"
    settings.cache_clear()


def test_unknown_scale_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    result = runner.invoke(app, ["world", "generate", "--scale", "huge", "--out", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "valid scales: small, demo, default, large" in result.output
    assert not (tmp_path / "w").exists()


def test_bench_refuses_unknown_scales() -> None:
    result = runner.invoke(app, ["bench", "world", "--scales", "small,galactic"])
    assert result.exit_code == 2
    assert "galactic" in result.output


@pytest.mark.slow
def test_generate_writes_the_world_to_the_default_folder(work_dir: Path) -> None:
    result = runner.invoke(app, ["world", "generate", "--scale", "small", "--seed", "3"])
    assert result.exit_code == 0, result.output
    world = work_dir / "worlds" / "small-3"
    manifest = json.loads((world / "manifest.json").read_text())
    assert manifest["seed"] == 3
    assert f"{manifest['tables']['order_lines']['rows']:,}" in result.output
    assert "world small: " in result.output


@pytest.mark.slow
def test_bench_prints_a_table_and_the_key_figures(work_dir: Path) -> None:
    result = runner.invoke(app, ["bench", "world", "--scales", "small"])
    assert result.exit_code == 0, result.output
    assert "peak MB" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("world: small ")
    assert "rows/s" in last
    assert "x the write floor" in last
    assert list((work_dir / "bench").iterdir()) == []  # the benchmark's worlds are cleaned up
