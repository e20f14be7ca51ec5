"""The churn publish handler against a moto server: an `online_records.jsonl` object in the lake becomes online-store
items, rejected lines land in quarantine with their reasons, and bad events are named."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shelfwise.churn.features import FEATURE_SET
from shelfwise.lake import Lake
from shelfwise.local_api import LocalLambdaContext, load_lambda
from shelfwise.local_aws import LocalAws, local_aws
from shelfwise.online_store import StoredItem, get_item

# A refused event publishes no metrics, and Powertools warns about that on every such call.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

RUN = "predictions/churn/run-1/"
FEATURES = {"recency_days": 12.0, "monetary": 80.5}
VERSION = FEATURE_SET.qualified_version


def customer(aws: LocalAws, customer_id: str) -> StoredItem | None:
    return get_item("customer", customer_id, "churn", table=aws.settings.online_table)


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAws]:
    # moto keeps one state per process: a fresh bucket and table per test
    monkeypatch.setenv("SHELFWISE_ENV", f"p{secrets.token_hex(4)}")
    monkeypatch.setenv("SHELFWISE_WORK_DIR", str(tmp_path / "work"))
    with local_aws() as running:
        yield running


@pytest.fixture
def publish(aws: LocalAws) -> ModuleType:
    return load_lambda("churn_publish", fresh=True)


def invoke(module: ModuleType, event: Any) -> dict[str, Any]:
    result: dict[str, Any] = module.handler(event, LocalLambdaContext(function_name="churn-publish-test"))
    return result


def put_lines(lake: Lake, key: str, lines: list[dict[str, Any] | str]) -> None:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    lake.put_bytes(key, text.encode(), content_type="application/x-ndjson")


def scored(customer_id: str, probability: float, as_of: str = "2024-12-31") -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "features": FEATURES,
        "as_of": as_of,
        "feature_set_version": VERSION,
        "probability": probability,
        "model_version": "v7",
    }


def test_online_records_in_the_lake_become_items_and_a_bad_line_is_quarantined(
    aws: LocalAws, publish: ModuleType
) -> None:
    lake = Lake(aws.settings)
    put_lines(
        lake,
        RUN + "online_records.jsonl",
        [
            scored("C1", 0.9),
            '{"customer_id": "C2", "features": {"recency_days": "soon"}, "as_of": "2024-12-31", '
            f'"feature_set_version": "{VERSION}"}}',
            scored("C3", 0.1),
            {"customer_id": "C4", "features": None, "as_of": "2024-12-31", "feature_set_version": VERSION},
        ],
    )
    result = invoke(publish, {"predictions_prefix": RUN})
    assert result["key"] == RUN + "online_records.jsonl"
    assert (result["lines"], result["written"], result["cold_starts"], result["rejected"]) == (4, 3, 1, 1)
    assert result["quarantine_key"] == "quarantine/churn-publish/run-1/rejected.jsonl"

    c1 = customer(aws, "C1")
    assert c1 is not None
    assert (c1.as_of, c1.feature_set_version) == ("2024-12-31", VERSION)
    assert c1.attributes == {"probability": 0.9, "model_version": "v7", "features": FEATURES}
    c4 = customer(aws, "C4")
    assert c4 is not None
    assert c4.attributes["features"] is None
    assert c4.attributes["probability"] is None
    assert customer(aws, "C2") is None

    (quarantined,) = [json.loads(line) for line in lake.get_bytes(result["quarantine_key"]).decode().splitlines()]
    assert quarantined["line"] == 2
    assert quarantined["customer_id"] == "C2"
    assert "features.recency_days must be a finite number, got 'soon'" in quarantined["reason"]
    assert '"soon"' in quarantined["text"]


def test_bucket_and_key_name_the_object_and_a_clean_run_quarantines_nothing(aws: LocalAws, publish: ModuleType) -> None:
    lake = Lake(aws.settings)
    put_lines(lake, "predictions/churn/other/online_records.jsonl", [scored("C1", 0.5)])
    result = invoke(publish, {"bucket": lake.bucket, "key": "predictions/churn/other/online_records.jsonl"})
    assert (result["written"], result["rejected"], result["quarantine_key"]) == (1, 0, None)
    assert list(lake.list("quarantine/")) == []


def test_a_redrive_of_an_older_run_cannot_roll_customers_back(aws: LocalAws, publish: ModuleType) -> None:
    lake = Lake(aws.settings)
    put_lines(lake, "predictions/churn/today/online_records.jsonl", [scored("C1", 0.9, "2024-12-31")])
    put_lines(
        lake,
        "predictions/churn/last-month/online_records.jsonl",
        [scored("C1", 0.2, "2024-11-30"), scored("C9", 0.3, "2024-11-30")],
    )
    assert invoke(publish, {"predictions_prefix": "predictions/churn/today/"})["written"] == 1
    redrive = invoke(publish, {"predictions_prefix": "predictions/churn/last-month/"})
    assert (redrive["lines"], redrive["written"], redrive["skipped_older"], redrive["rejected"]) == (2, 1, 1, 0)
    c1 = customer(aws, "C1")
    assert c1 is not None
    assert (c1.as_of, c1.attributes["probability"]) == ("2024-12-31", 0.9)


def test_lines_of_another_feature_set_version_are_rejected_naming_both(aws: LocalAws, publish: ModuleType) -> None:
    lake = Lake(aws.settings)
    old = scored("C5", 0.5) | {"feature_set_version": "churn/1"}
    put_lines(lake, RUN + "online_records.jsonl", [old, scored("C6", 0.4)])
    result = invoke(publish, {"predictions_prefix": RUN})
    assert (result["written"], result["rejected"]) == (1, 1)
    (quarantined,) = [json.loads(line) for line in lake.get_bytes(result["quarantine_key"]).decode().splitlines()]
    assert "'churn/1'" in quarantined["reason"]
    assert VERSION in quarantined["reason"]
    assert customer(aws, "C5") is None


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"predictions_prefix": "models/churn/run-1/"}, "predictions_prefix: String should match pattern"),
        ({"predictions_prefix": "predictions/churn/run-1"}, "predictions_prefix: String should match pattern"),
        ({}, "give predictions_prefix, or both bucket and key"),
        ({"bucket": "some-bucket"}, "give predictions_prefix, or both bucket and key"),
        ({"predictions_prefix": RUN, "key": "x"}, "not both"),
        ({"predictions_prefix": RUN, "run": "x"}, "run: Extra inputs are not permitted"),
        ({"bucket": "Bad_Bucket", "key": "k"}, "bucket: String should match pattern"),
        ({"predictions_prefix": 42}, "predictions_prefix: Input should be a valid string"),
        ([RUN], "the event must be a JSON object, got list"),
    ],
)
def test_a_bad_event_is_refused_naming_the_field(publish: ModuleType, event: Any, message: str) -> None:
    with pytest.raises(publish.InvalidEventError) as caught:
        invoke(publish, event)
    assert message in str(caught.value)


def test_a_run_without_online_records_is_named(aws: LocalAws, publish: ModuleType) -> None:
    with pytest.raises(publish.OnlineRecordsMissingError, match=r"predictions/churn/never-ran/online_records\.jsonl"):
        invoke(publish, {"predictions_prefix": "predictions/churn/never-ran/"})


def test_the_handler_imports_no_dataframe_library() -> None:
    """The bundle has no pyarrow, pandas or numpy (see lambdas/churn_publish/requirements.txt): importing the
    handler must not need them."""
    probe = (
        "import sys\n"
        "from shelfwise.local_api import load_lambda\n"
        "load_lambda('churn_publish')\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pyarrow', 'pandas', 'numpy', 'xgboost'})\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
