"""The demand publish Lambda against the local lake and online table: a batch forecast's lines become the items the
demand API reads, a line it could not serve is quarantined with its reason, and another domain's run is refused."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from shelfwise.demand.forecast_records import forecast_records
from shelfwise.demand.keys import ENTITY, SORT_KEY, series_id
from shelfwise.demand.publish import forecast_from_item, online_line
from shelfwise.lake import Lake
from shelfwise.local_api import LocalLambdaContext, load_lambda
from shelfwise.local_aws import LocalAws, local_aws
from shelfwise.online_store import get_item

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

RUN = "predictions/demand/run-1/"


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAws]:
    monkeypatch.setenv("SHELFWISE_ENV", f"p{secrets.token_hex(4)}")
    monkeypatch.setenv("SHELFWISE_WORK_DIR", str(tmp_path / "work"))
    with local_aws() as running:
        yield running


@pytest.fixture
def publish(aws: LocalAws) -> ModuleType:
    return load_lambda("demand_publish", fresh=True)


def lines(pairs: list[tuple[str, str]]) -> list[str]:
    paths = np.random.default_rng(0).poisson(4, size=(len(pairs), 100, 28)).astype(float)
    records = forecast_records(pairs, paths, dt.date(2025, 1, 1), "2025-01-01-deepar-abc", [False] * len(pairs))
    return [json.dumps(online_line(r)) for r in records]


def test_forecast_lines_become_items_the_api_reads_and_a_bad_line_is_quarantined(
    aws: LocalAws, publish: ModuleType
) -> None:
    lake = Lake(aws.settings)
    good = lines([("S1", "SKU-1"), ("S 2", "SKU#2")])
    broken = json.dumps({**json.loads(good[0]), "id": series_id("S3", "X"), "mean": [1.0]})
    lake.put_bytes(RUN + "online_records.jsonl", "\n".join([good[0], broken, good[1]]).encode() + b"\n")
    result = publish.handler({"predictions_prefix": RUN}, LocalLambdaContext(function_name="demand-publish-test"))
    assert (result["lines"], result["written"], result["rejected"]) == (3, 2, 1)
    assert result["as_of"] == "2025-01-01"
    stored = get_item(ENTITY, series_id("S 2", "SKU#2"), SORT_KEY, table=aws.settings.online_table)
    assert stored is not None
    record = forecast_from_item(stored)
    assert (record.store_id, record.sku, record.horizon_days) == ("S 2", "SKU#2", 28)
    (quarantined,) = [json.loads(x) for x in lake.get_bytes(result["quarantine_key"]).decode().splitlines()]
    assert result["quarantine_key"] == "quarantine/demand-publish/run-1/rejected.jsonl"
    assert quarantined["line"] == 2
    assert quarantined["id"] == series_id("S3", "X")
    assert "has 28 days, not 1" in quarantined["reason"]


def test_a_run_of_another_domain_is_refused_by_name(publish: ModuleType) -> None:
    with pytest.raises(publish.InvalidEventError, match="predictions/demand/"):
        publish.handler({"predictions_prefix": "predictions/churn/run-1/"}, LocalLambdaContext(function_name="t"))


def test_the_handler_bundle_needs_no_pandas_or_torch() -> None:
    requirements = (Path(__file__).resolve().parents[2] / "lambdas" / "demand_publish" / "requirements.txt").read_text()
    pinned: Any = {line.split("==")[0] for line in requirements.splitlines() if "==" in line}
    assert not pinned & {"pandas", "pyarrow", "torch", "gluonts"}
