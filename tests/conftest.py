"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local SparkSession for the whole test session (starting one takes seconds)."""
    from shelfwise.spark import local_session

    session = local_session("shelfwise-tests", shuffle_partitions=2, driver_memory="2g")
    yield session
    session.stop()
