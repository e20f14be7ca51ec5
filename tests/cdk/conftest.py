"""CDK tests: one synthesis of the real app (`cdk/app.py`) per test session, shared by every template test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_DIR = REPO_ROOT / "cdk"

# `shelfwise_cdk` lives in cdk/ (see cdk/shelfwise_cdk/__init__.py); Node 20 banners would clutter every run.
sys.path.insert(0, str(CDK_DIR))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

#: The deployment the tests synthesize: not the cdk.json one, to show that context flows into every name.
TEST_CONTEXT: dict[str, Any] = {
    "shelfwise:env": "ci",
    "shelfwise:region": "eu-west-1",
    "aws:cdk:bundling-stacks": [],
}
STACKS = (
    "Platform",
    "DataLake",
    "OnlineStore",
    "FeatureJobs",
    "ChurnPipelines",
    "DemandPipelines",
    "VisualPipelines",
    "Api",
    "Orchestration",
)


@dataclass(frozen=True)
class Synthesis:
    outdir: Path
    returncode: int
    stderr: str

    def template(self, stack: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.outdir / f"{stack}.template.json").read_text())
        return data


@pytest.fixture(scope="session")
def synthesis(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    """Run `cdk/app.py` as the CDK CLI would (outdir and context through the environment), cdk-nag included."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    env = dict(os.environ, CDK_OUTDIR=str(outdir), CDK_CONTEXT_JSON=json.dumps(TEST_CONTEXT))
    for name in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "SHELFWISE_ENV"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, str(CDK_DIR / "app.py")], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    return Synthesis(outdir=outdir, returncode=result.returncode, stderr=result.stderr)


@pytest.fixture(scope="session")
def templates(synthesis: Synthesis) -> dict[str, dict[str, Any]]:
    missing = [s for s in STACKS if not (synthesis.outdir / f"{s}.template.json").exists()]
    if missing:
        pytest.fail(f"synthesis wrote no template for {missing}:\n{synthesis.stderr[-6000:]}")
    return {stack: synthesis.template(stack) for stack in STACKS}
