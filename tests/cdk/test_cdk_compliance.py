"""The synthesized app passes cdk-nag AwsSolutions (every finding fixed or acknowledged) and cfn-lint."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def test_synthesis_succeeds_with_cdk_nag_enabled(synthesis: Any) -> None:
    # An unacknowledged AwsSolutions finding makes app.synth() raise ValidationFailed and the app exit non-zero.
    assert synthesis.returncode == 0, synthesis.stderr[-6000:]
    assert "ValidationFailed" not in synthesis.stderr


def test_validation_report_has_no_violations(synthesis: Any) -> None:
    report_path = synthesis.outdir / "validation-report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
        assert violations == [], json.dumps(violations, indent=1)[:4000]


def test_cfn_lint_reports_no_errors(synthesis: Any, templates: dict[str, dict[str, object]]) -> None:
    from cfnlint.api import lint_file

    errors = {}
    for stack in templates:
        matches = lint_file(synthesis.outdir / f"{stack}.template.json")
        found = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
        if found:
            errors[stack] = found
    assert errors == {}
