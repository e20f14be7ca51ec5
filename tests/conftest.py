"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

# Scratch files (worlds, job folders) go to a temporary folder, not the checkout's .shelfwise/, so that tests never
# see or clobber a user's demo run.
os.environ.setdefault("SHELFWISE_WORK_DIR", tempfile.mkdtemp(prefix="shelfwise-tests-"))

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local SparkSession for the whole test session (starting one takes seconds)."""
    from shelfwise.spark import local_session

    session = local_session("shelfwise-tests", shuffle_partitions=2, driver_memory="2g")
    yield session
    session.stop()
