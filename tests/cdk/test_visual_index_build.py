"""The visual index build in a deployment on an OpenSearch backend: the scoring pipeline's role may write the index
(the domain's access policy names it), the daily chain passes the backend and its endpoint, and the pipelines stack
holds no reference to the API stack's backend (no cycle); on both OpenSearch backends the whole app is cdk-nag and
cfn-lint clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from shelfwise_cdk.application import add_security_checks, build_stacks, library_pipeline_code, new_app
from shelfwise_cdk.deployment import cdk_json_context, deployment_from_context

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def _synthesize(tmp_path: Path, backend: str) -> tuple[Any, Any]:
    context = {
        **cdk_json_context(REPO_ROOT / "cdk.json"),
        "shelfwise:env": "ci",
        "shelfwise:region": "eu-west-1",
        "shelfwise:searchBackend": backend,
        "aws:cdk:bundling-stacks": [],
    }
    app = new_app(outdir=str(tmp_path), context=context)
    stacks = build_stacks(app, deployment_from_context(app.node.try_get_context, REPO_ROOT), library_pipeline_code())
    add_security_checks(app)
    return stacks, app.synth()  # cdk-nag's unacknowledged findings and dependency cycles fail here


def _cfn_lint_errors(outdir: Path) -> dict[str, list[str]]:
    from cfnlint.api import lint_file

    errors = {}
    for path in sorted(outdir.glob("*.template.json")):
        found = [f"{m.rule.id} {m.message} ({m.path})" for m in lint_file(path) if m.rule.id.startswith("E")]
        if found:
            errors[path.name] = found
    return errors


def test_on_opensearch_the_index_build_may_write_the_index_and_the_chain_passes_its_endpoint(tmp_path: Path) -> None:
    stacks, assembly = _synthesize(tmp_path, "opensearch")

    def template(stack: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((tmp_path / f"{stack}.template.json").read_text())
        return loaded

    (domain,) = [r for r in template("Api")["Resources"].values() if r["Type"] == "AWS::OpenSearchService::Domain"]
    principals = json.dumps([s["Principal"] for s in domain["Properties"]["AccessPolicies"]["Statement"]])
    assert "shelfwise-ci-visual-pipelines" in principals  # the pipelines role, from its stack
    pipelines_role = json.dumps(template("VisualPipelines"))
    assert "es:ESHttpPut" in pipelines_role
    assert "shelfwise-ci-api" not in pipelines_role  # nothing of the API stack: the endpoint comes at run time

    machine = json.dumps(template("Orchestration"))
    assert '\\"Name\\":\\"SearchBackend\\",\\"Value\\":\\"opensearch\\"' in machine
    assert '\\"Name\\":\\"SearchEndpoint\\",\\"Value\\":\\"https://' in machine
    assert "shelfwise-ci-api" in machine  # the endpoint, from the API stack
    assert "Api" in {d.id for d in assembly.get_stack_artifact("Orchestration").dependencies}
    assert "Api" not in {d.id for d in assembly.get_stack_artifact("VisualPipelines").dependencies}
    assert stacks.api.searches["visual"].writers == [stacks.pipelines["visual"].role]
    assert _cfn_lint_errors(tmp_path) == {}


def test_on_opensearch_serverless_the_whole_app_synthesizes_cdk_nag_and_cfn_lint_clean(tmp_path: Path) -> None:
    _, assembly = _synthesize(tmp_path, "opensearch-serverless")
    templates = json.dumps([json.loads(p.read_text()) for p in tmp_path.glob("*.template.json")])
    assert "AWS::OpenSearchServerless::Collection" in templates
    assert "AWS::OpenSearchService::Domain" not in templates
    assert "Api" in {d.id for d in assembly.get_stack_artifact("Orchestration").dependencies}
    assert _cfn_lint_errors(tmp_path) == {}
