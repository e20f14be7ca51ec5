"""The churn handler with real API Gateway proxy events against a moto server holding the artifact and the store."""

from __future__ import annotations

import base64
import json
import math
from datetime import date
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from shelfwise.bench.serving import MODEL_FEATURES, ServingWorld, model_inputs
from shelfwise.churn.features import FEATURE_NAMES, FEATURES
from shelfwise.churn.publish import ChurnRecord
from shelfwise.config import settings
from shelfwise.local_api import LocalLambdaContext, load_lambda, proxy_event
from shelfwise.online_store import write_items

CONTEXT = LocalLambdaContext(function_name="churn-test")


def typed(features: dict[str, float]) -> dict[str, Any]:
    return {f.name: int(features[f.name]) if f.dtype == "int" else features[f.name] for f in FEATURES}


def row_of(world: ServingWorld, customer_id: str) -> np.ndarray:
    """The model's input row: the stored features and the BG/NBD ones derived from them."""
    return model_inputs(np.asarray([[world.rows[customer_id][n] for n in FEATURE_NAMES]], dtype=np.float32))


def test_known_customer_gets_reasons_whose_contributions_add_up_to_the_logit(invoke: Any, world: ServingWorld) -> None:
    customer_id = sorted(world.rows)[5]
    status, _, body = invoke.get_churn(customer_id)

    assert status == 200
    assert body["customer_id"] == customer_id
    assert body["cold_start"] is False
    assert body["model_version"] == "v-test"
    assert body["risk_band"] in {"low", "medium", "high"}
    row = row_of(world, customer_id)
    contributions = world.booster.predict(xgb.DMatrix(row, feature_names=list(MODEL_FEATURES)), pred_contribs=True)[0]
    logit = math.log(body["probability"] / (1 - body["probability"]))
    assert float(contributions.sum(dtype=np.float64)) == pytest.approx(logit, abs=1e-4)
    # The reasons are the largest positive contributions, largest first, with the stored feature values.
    values = dict(zip(MODEL_FEATURES, row[0], strict=True))
    expected = sorted(((c, n) for n, c in zip(MODEL_FEATURES, contributions[:-1], strict=True) if c > 0), reverse=True)
    assert [r["feature"] for r in body["reasons"]] == [n for _, n in expected[:3]]
    for reason, (contribution, name) in zip(body["reasons"], expected, strict=False):
        assert reason["contribution"] == pytest.approx(float(contribution), abs=1e-6)
        assert reason["value"] == pytest.approx(float(values[name]), rel=1e-5)


def test_probability_matches_the_raw_model(invoke: Any, world: ServingWorld) -> None:
    customer_id = sorted(world.rows)[17]
    _, _, body = invoke.get_churn(customer_id)
    assert body["probability"] == pytest.approx(float(world.booster.inplace_predict(row_of(world, customer_id))[0]))


def test_risk_band_follows_the_artifact_thresholds(invoke: Any, world: ServingWorld) -> None:
    for customer_id in sorted(world.rows)[:40]:
        _, _, body = invoke.get_churn(customer_id)
        p = body["probability"]
        assert body["risk_band"] == ("high" if p >= 0.6 else "low" if p < 0.3 else "medium")


def test_cold_start_customer_gets_the_prior_measured_on_customers_without_history(
    invoke: Any, world: ServingWorld
) -> None:
    status, _, body = invoke.get_churn(world.cold_customers[0])
    assert status == 200
    assert body["cold_start"] is True
    assert body["reasons"] == []
    assert body["probability"] == pytest.approx(world.cold_start_rate)
    assert world.cold_start_rate != pytest.approx(world.base_rate)  # not the buyers' rate


def test_unknown_customer_is_404_naming_the_field(invoke: Any) -> None:
    status, _, body = invoke.get_churn("C999999")
    invoke.assert_client_error(status, body)
    assert status == 404
    assert body["error"]["code"] == "customer_not_found"
    assert body["error"]["field"] == "customer_id"


@pytest.mark.parametrize("customer_id", ["-starts-with-dash", "has space", "x" * 65, "semi;colon"])
def test_malformed_customer_id_is_422(invoke: Any, customer_id: str) -> None:
    status, _, body = invoke.get_churn(customer_id)
    invoke.assert_client_error(status, body)
    assert status == 422
    assert body["error"]["field"] == "customer_id"


def test_what_if_equals_the_raw_xgboost_prediction(invoke: Any, world: ServingWorld) -> None:
    customer_id = sorted(world.rows)[3]
    status, _, body = invoke.score(json.dumps({"features": typed(world.rows[customer_id])}))
    assert status == 200
    assert body["probability"] == pytest.approx(float(world.booster.inplace_predict(row_of(world, customer_id))[0]))
    assert body["model_version"] == "v-test"
    assert all(r["contribution"] > 0 for r in body["reasons"])


def test_what_if_changes_with_the_payload(invoke: Any, world: ServingWorld) -> None:
    features = typed(world.rows[sorted(world.rows)[3]])
    _, _, recent = invoke.score(json.dumps({"features": features | {"recency_days": 1}}))
    _, _, lapsed = invoke.score(json.dumps({"features": features | {"recency_days": 400}}))
    # The synthetic labels rise with recency, so the model must too.
    assert lapsed["probability"] > recent["probability"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"recency_days": -1}, "features.recency_days"),
        ({"recency_days": 2.5}, "features.recency_days"),
        ({"discount_share": 1.5}, "features.discount_share"),
        ({"monetary": "12"}, "features.monetary"),
        ({"frequency": True}, "features.frequency"),
        ({"surprise": 1}, "features.surprise"),
    ],
)
def test_what_if_rejects_a_bad_feature_naming_it(
    invoke: Any, world: ServingWorld, change: dict[str, Any], field: str
) -> None:
    features = typed(world.rows[sorted(world.rows)[0]]) | change
    status, _, body = invoke.score(json.dumps({"features": features}))
    invoke.assert_client_error(status, body)
    assert status == 422
    assert body["error"]["field"] == field


def test_what_if_requires_every_feature(invoke: Any, world: ServingWorld) -> None:
    features = typed(world.rows[sorted(world.rows)[0]])
    del features["online_share"]
    status, _, body = invoke.score(json.dumps({"features": features}))
    assert status == 422
    assert body["error"]["field"] == "features.online_share"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ('{"features": ', "application/json", 400, "malformed_json"),
        ("[" * 5000 + "]" * 5000, "application/json", 400, "malformed_json"),
        ('{"features": {"recency_days": ' + "9" * 5000 + "}}", "application/json", 400, "malformed_json"),
        ('{"features": {}}', "text/plain", 415, "unsupported_media_type"),
        ("a=1&b=2", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("x" * 20_000, "application/json", 413, "payload_too_large"),
        (None, "application/json", 422, "invalid_request"),
        # Powertools' multipart parser raises on an empty body without a boundary (found by the property tests).
        (None, "multipart/form-data", 415, "unsupported_media_type"),
    ],
)
def test_bad_bodies_get_4xx(invoke: Any, body: str | None, content_type: str, status: int, code: str) -> None:
    got, _, answer = invoke.score(body, content_type)
    invoke.assert_client_error(got, answer)
    assert (got, answer["error"]["code"]) == (status, code)


def test_binary_body_that_is_not_utf8_is_400(invoke: Any) -> None:
    event = proxy_event("POST", "/churn/score", headers={"Content-Type": "application/json"}, body=b"\xff\xfe\x00")
    assert event["isBase64Encoded"] is True
    status, _, body = invoke(event)
    invoke.assert_client_error(status, body)
    assert status == 400


def test_invalid_base64_is_400(invoke: Any) -> None:
    event = proxy_event("POST", "/churn/score", headers={"Content-Type": "application/json"}, body="{}")
    event["isBase64Encoded"] = True
    event["body"] = "not base64!"
    status, _, body = invoke(event)
    invoke.assert_client_error(status, body)
    assert body["error"]["code"] == "malformed_body"


def test_base64_json_body_is_accepted(invoke: Any, world: ServingWorld) -> None:
    payload = json.dumps({"features": typed(world.rows[sorted(world.rows)[0]])}).encode()
    event = proxy_event("POST", "/churn/score", headers={"Content-Type": "application/json"}, body=payload)
    event["isBase64Encoded"], event["body"] = True, base64.b64encode(payload).decode()
    status, _, _ = invoke(event)
    assert status == 200


def test_wrong_method_is_405_with_allow(invoke: Any) -> None:
    status, headers, body = invoke(proxy_event("DELETE", "/customers/C000001/churn"))
    invoke.assert_client_error(status, body)
    assert status == 405
    assert headers["allow"] == ["GET"]
    status, headers, _ = invoke(proxy_event("GET", "/churn/score"))
    assert (status, headers["allow"]) == (405, ["POST"])


def test_unknown_route_is_404(invoke: Any) -> None:
    status, _, body = invoke(proxy_event("GET", "/customers"))
    invoke.assert_client_error(status, body)
    assert (status, body["error"]["code"]) == (404, "route_not_found")


def test_openapi_document_lists_both_routes_with_error_shape(churn_app: ModuleType) -> None:
    document = json.loads(churn_app.app.get_openapi_json_schema())
    assert set(document["paths"]) >= {"/customers/{customer_id}/churn", "/churn/score"}
    assert "ErrorOut" in document["components"]["schemas"]
    feature_schema = document["components"]["schemas"]["FeatureValues"]
    assert set(feature_schema["required"]) == set(FEATURE_NAMES)
    assert feature_schema["additionalProperties"] is False


def test_swagger_page_is_self_contained(invoke: Any) -> None:
    response = invoke.module.handler(proxy_event("GET", "/churn/swagger"), CONTEXT)
    assert response["statusCode"] == 200
    assert "SwaggerUIBundle" in response["body"]
    assert "cdn" not in response["body"].split("<script", 1)[0].lower()


def test_model_is_downloaded_once_per_container_within_the_ttl(world: ServingWorld) -> None:
    module = load_lambda("churn", fresh=True)
    downloads: list[str] = []
    models = module.service().models
    s3 = models.s3

    class Counting:
        def download_file(self, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
            downloads.append(key)
            return s3().download_file(bucket, key, *args, **kwargs)

    models.s3 = Counting
    for customer_id in sorted(world.rows)[:3]:
        assert module.handler(_get_event(customer_id), CONTEXT)["statusCode"] == 200
    assert downloads == [f"models/churn/{world.model_version}/model.tar.gz"]


def test_no_approved_model_is_503_without_internal_detail(world: ServingWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFWISE_MODEL_GROUP_PREFIX", "nothing-here-")
    settings.cache_clear()
    try:
        module = load_lambda("churn", fresh=True)
        response = module.handler(_get_event(sorted(world.rows)[0]), CONTEXT)
    finally:
        monkeypatch.undo()
        settings.cache_clear()
    assert response["statusCode"] == 503
    error = json.loads(response["body"])["error"]
    assert error["code"] == "no_approved_model"
    assert "nothing-here" not in error["message"]
    assert "arn:" not in error["message"]


def _get_event(customer_id: str) -> dict[str, Any]:
    return proxy_event(
        "GET",
        f"/customers/{customer_id}/churn",
        resource="/customers/{customer_id}/churn",
        path_parameters={"customer_id": customer_id},
    )


def test_stored_row_missing_a_model_feature_is_a_5xx_in_the_error_shape(invoke: Any, world: ServingWorld) -> None:
    features = dict(world.rows[sorted(world.rows)[0]])
    del features["online_share"]
    write_items([ChurnRecord("BROKEN1", features, date.today().isoformat()).to_item()])
    status, _, body = invoke.get_churn("BROKEN1")
    # Not the client's fault, so a 5xx, but the error shape, and no internals in the message.
    assert status == 503
    assert body["error"]["code"] == "feature_mismatch"


def test_a_record_of_another_feature_set_version_is_refused_naming_both(invoke: Any, world: ServingWorld) -> None:
    features = dict(world.rows[sorted(world.rows)[0]])
    old = ChurnRecord("OLDSET1", features, date.today().isoformat(), feature_set_version="churn/1")
    write_items([old.to_item()])
    status, _, body = invoke.get_churn("OLDSET1")
    assert status == 503
    assert body["error"]["code"] == "feature_set_mismatch"
    assert "churn/1" in body["error"]["message"]
    assert world.model_version not in body["error"]["message"]
