"""`shelfwise api` refuses to start without a local AWS, saying what to do."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shelfwise.cli import app
from shelfwise.config import settings


def test_api_without_local_aws_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["api", "--port", "0"])
    finally:
        settings.cache_clear()
    assert result.exit_code == 2
    assert "AWS_ENDPOINT_URL is not set" in result.output
    assert "shelfwise demo --serve" in result.output
