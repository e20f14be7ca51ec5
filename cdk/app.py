"""CDK entry point (`cdk.json` runs `.venv/bin/python cdk/app.py`): synthesizes every Shelfwise stack to cdk.out/.

Python puts this file's folder (`cdk/`) on `sys.path`, which is how `shelfwise_cdk` imports; the `shelfwise` library
is installed in the virtualenv. The deployment and the feature flags come from the context in `cdk.json` (override
with `-c key=value`).
"""

from __future__ import annotations

import os
from pathlib import Path

# jsii starts Node when aws_cdk is imported; Node 20 is past end-of-life and jsii would print a banner each time.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from shelfwise_cdk.application import add_security_checks, build_stacks, library_pipeline_code, new_app
from shelfwise_cdk.deployment import cdk_json_context, deployment_from_context

REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    app = new_app(context=cdk_json_context(REPO_ROOT / "cdk.json"))
    deployment = deployment_from_context(app.node.try_get_context, REPO_ROOT)
    build_stacks(app, deployment, library_pipeline_code())
    add_security_checks(app)
    app.synth()


if __name__ == "__main__":
    main()
