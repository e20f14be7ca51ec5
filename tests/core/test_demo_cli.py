"""`shelfwise demo` refuses bad options before starting anything, naming the valid values."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shelfwise.cli import app


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--scale", "huge"], "valid scales: small, demo, default, large"),
        (["--stop-after", "lunch"], "valid stages: world, ingest"),
    ],
)
def test_bad_demo_option_names_the_valid_values(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(app, ["demo", *args])
    assert result.exit_code == 2
    # The error box wraps long lines: compare the words only.
    words = " ".join(result.output.replace("│", " ").split())
    assert expected in words
