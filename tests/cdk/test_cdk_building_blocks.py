"""The pure parts of the CDK app: deployment context, packaging, bundling, nag rendering, token stand-ins."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Aws, Stack, Token
from shelfwise_cdk.constructs.glue_job import job_arguments
from shelfwise_cdk.constructs.local_bundling import BundleSource, BundlingError, PipLocalBundling
from shelfwise_cdk.deployment import DeploymentContextError, cdk_json_context, deployment_from_context
from shelfwise_cdk.nag import render
from shelfwise_cdk.packaging import build_python_zip, tree_hash
from shelfwise_cdk.stacks.churn_pipeline import PipelineDefinitionInputs, definition_with_tokens
from shelfwise_cdk.stacks.data_lake import lake_bucket_name
from shelfwise_cdk.stacks.feature_jobs import FEATURE_JOBS
from shelfwise_cdk.stacks.online_store import table_keys

from shelfwise.config import Settings
from shelfwise.local_aws import online_table_spec

REPO_ROOT = Path(__file__).resolve().parents[2]


def context(values: dict[str, Any]) -> Any:
    return values.get


# -- deployment context ------------------------------------------------------------------------------------------
def test_context_sets_the_deployment_names() -> None:
    deployment = deployment_from_context(
        context({"shelfwise:env": "prod", "shelfwise:region": "eu-central-1", "shelfwise:account": "123456789012"}),
        REPO_ROOT,
    )
    assert deployment.settings.env == "prod"
    assert deployment.settings.region == "eu-central-1"
    assert deployment.settings.online_table == "shelfwise-prod-online"
    assert deployment.account == "123456789012"
    assert deployment.stack_name("data-lake") == "shelfwise-prod-data-lake"


def test_context_ignores_the_shell_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFWISE_ENV", "from-shell")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    deployment = deployment_from_context(context({"shelfwise:env": "dev"}), REPO_ROOT)
    assert (deployment.settings.env, deployment.settings.region) == ("dev", "us-east-1")


def test_bad_context_values_are_named() -> None:
    with pytest.raises(DeploymentContextError, match=r"shelfwise:env='Prod!'.*shelfwise:region='moon-1'"):
        deployment_from_context(context({"shelfwise:env": "Prod!", "shelfwise:region": "moon-1"}), REPO_ROOT)
    with pytest.raises(DeploymentContextError, match="shelfwise:account='12345'"):
        deployment_from_context(context({"shelfwise:account": "12345"}), REPO_ROOT)


def test_cdk_json_context_is_read_and_valid() -> None:
    values = cdk_json_context(REPO_ROOT / "cdk.json")
    assert deployment_from_context(values.get, REPO_ROOT).settings.env == values["shelfwise:env"]


def test_unreadable_cdk_json_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "cdk.json"
    broken.write_text("{not json")
    with pytest.raises(DeploymentContextError, match=r"cdk\.json"):
        cdk_json_context(broken)


# -- names -------------------------------------------------------------------------------------------------------
def test_lake_bucket_name_is_unique_per_account_and_region_unless_set() -> None:
    default = lake_bucket_name(Settings.model_validate({"env": "dev", "SHELFWISE_REGION": "eu-west-1"}))
    assert default.startswith("shelfwise-dev-lake-")
    assert default.endswith("-eu-west-1")
    assert Token.is_unresolved(default)  # the account id pseudo parameter
    explicit = Settings.model_validate({"env": "dev", "SHELFWISE_LAKE_BUCKET": "acme-retail-lake"})
    assert lake_bucket_name(explicit) == "acme-retail-lake"


def test_too_long_lake_bucket_name_fails_naming_the_fix() -> None:
    cfg = Settings.model_validate({"env": "a-very-long-env-name1", "SHELFWISE_REGION": "ap-southeast-2"})
    with pytest.raises(ValueError, match="shelfwise:lakeBucketName"):
        lake_bucket_name(cfg)


def test_online_table_keys_follow_the_local_spec() -> None:
    partition, sort = table_keys(online_table_spec("t"))
    assert (partition.name, sort.name) == ("pk", "sk")


def test_glue_job_arguments_are_the_scripts_own() -> None:
    scripts = {spec.script: (REPO_ROOT / "glue_jobs" / spec.script).read_text() for spec in FEATURE_JOBS}
    for spec in FEATURE_JOBS:
        for argument in [*spec.inputs, *spec.outputs]:
            assert f'"{argument}"' in scripts[spec.script], f"{spec.script} does not parse --{argument}"


def test_glue_job_arguments_reject_clashes_and_bad_names() -> None:
    assert job_arguments([], [], {"--input_path": "s3://b/raw/"})["--input_path"] == "s3://b/raw/"
    with pytest.raises(ValueError, match="--enable-metrics"):
        job_arguments([], [], {"--enable-metrics": "false"})
    with pytest.raises(ValueError, match="input_path"):
        job_arguments([], [], {"input_path": "s3://b/raw/"})


# -- packaging ---------------------------------------------------------------------------------------------------
def make_package(root: Path) -> Path:
    package = root / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "mod.py").write_text("X = 1\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    return package


def test_library_zip_is_deterministic_and_rooted_at_the_package(tmp_path: Path) -> None:
    package = make_package(tmp_path)
    first = build_python_zip([package], tmp_path / "a.zip").read_bytes()
    (package / "sub" / "mod.py").touch()  # a new mtime must not change the bytes
    second = build_python_zip([package], tmp_path / "b.zip").read_bytes()
    assert first == second
    names = zipfile.ZipFile(tmp_path / "a.zip").namelist()
    assert names == ["pkg/__init__.py", "pkg/sub/mod.py"]


def test_library_zip_of_shelfwise_holds_the_config_module(tmp_path: Path) -> None:
    names = zipfile.ZipFile(build_python_zip([REPO_ROOT / "shelfwise"], tmp_path / "s.zip")).namelist()
    assert "shelfwise/config.py" in names
    assert not [n for n in names if "__pycache__" in n]


def test_tree_hash_changes_with_content_and_requirements(tmp_path: Path) -> None:
    package = make_package(tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0\n")
    before = tree_hash([package], [requirements])
    (package / "__pycache__" / "other.pyc").write_bytes(b"\1")
    assert tree_hash([package], [requirements]) == before
    (package / "sub" / "mod.py").write_text("X = 2\n")
    changed = tree_hash([package], [requirements])
    assert changed != before
    requirements.write_text("six==1.16.0\n")
    assert tree_hash([package], [requirements]) != changed


# -- local bundling ----------------------------------------------------------------------------------------------
def test_bundle_holds_code_at_root_and_library_as_package(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("def handler(event, context): ...\n")
    (code / "requirements.txt").write_text("# nothing to install\n")
    package = make_package(tmp_path)
    out = tmp_path / "out"
    bundler = PipLocalBundling(sources=[BundleSource(code), BundleSource(package, "pkg")], requirements=code / "r.txt")
    with pytest.raises(BundlingError, match=r"r\.txt does not exist"):
        bundler.try_bundle(str(out))
    bundler = PipLocalBundling(
        sources=[BundleSource(code), BundleSource(package, "pkg")], requirements=code / "requirements.txt"
    )
    assert bundler.try_bundle(str(out)) is True
    assert (out / "app.py").exists()
    assert (out / "pkg" / "sub" / "mod.py").exists()
    assert not (out / "pkg" / "__pycache__").exists()


def test_pip_command_targets_the_lambda_platform(tmp_path: Path) -> None:
    bundler = PipLocalBundling(
        sources=[], requirements=tmp_path / "r.txt", platforms=("manylinux2014_x86_64", "manylinux_2_28_x86_64")
    )
    command = bundler.pip_command(tmp_path / "out")
    assert command[command.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in command
    assert [command[i + 1] for i, a in enumerate(command) if a == "--platform"] == [
        "manylinux2014_x86_64",
        "manylinux_2_28_x86_64",
    ]


@pytest.mark.slow
def test_bundle_installs_linux_wheels_for_python312(tmp_path: Path) -> None:
    """Real pip against the package registry: a cp312 manylinux wheel lands in the bundle."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("PyYAML==6.0.2\n")  # has compiled wheels, so the platform tags matter
    out = tmp_path / "out"
    PipLocalBundling(
        sources=[], requirements=requirements, platforms=("manylinux2014_x86_64", "manylinux_2_28_x86_64")
    ).try_bundle(str(out))
    extensions = [p.name for p in (out / "yaml").glob("_yaml*.so")]
    assert extensions
    assert all("cpython-312-x86_64-linux-gnu" in name for name in extensions)


@pytest.mark.slow
def test_failed_pip_install_names_the_requirements(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("this-package-does-not-exist-anywhere==0.0.0\n")
    bundler = PipLocalBundling(sources=[], requirements=requirements)
    with pytest.raises(BundlingError, match=r"pip install -r .*requirements.txt for python 3.12"):
        bundler.try_bundle(str(tmp_path / "out"))


# -- cdk-nag rendering and token stand-ins -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack(App(), "Probe")


def test_render_prints_arns_as_cdk_nag_does(stack: Stack) -> None:
    arn = f"arn:{Aws.PARTITION}:s3:::lake-{Aws.ACCOUNT_ID}-eu-west-1/raw/*"
    assert render(stack, arn) == "arn:<AWS::Partition>:s3:::lake-<AWS::AccountId>-eu-west-1/raw/*"
    assert render(stack, "*") == "*"


def inputs_with_tokens() -> PipelineDefinitionInputs:
    return PipelineDefinitionInputs(
        pipeline_name="shelfwise-ci-churn",
        role_arn=f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/shelfwise-ci-churn-pipeline",
        region="eu-west-1",
        bucket=f"shelfwise-ci-lake-{Aws.ACCOUNT_ID}-eu-west-1",
        model_package_group="churn",
        code_uris={"prepare.py": f"s3://assets-{Aws.ACCOUNT_ID}/abc.py"},
    )


def test_definition_gets_plain_values_and_the_tokens_come_back(stack: Stack) -> None:
    seen: list[PipelineDefinitionInputs] = []

    def definition(inputs: PipelineDefinitionInputs) -> str:
        seen.append(inputs)
        return json.dumps(
            {"role": inputs.role_arn, "data": f"s3://{inputs.bucket}/features/", "code": inputs.code_uris["prepare.py"]}
        )

    body = definition_with_tokens(definition, inputs_with_tokens())
    plain = seen[0]
    assert not any(Token.is_unresolved(v) for v in (plain.role_arn, plain.bucket, *plain.code_uris.values()))
    assert plain.role_arn.startswith("arn:")
    assert plain.code_uris["prepare.py"].startswith("s3://")
    resolved = render(stack, body)
    assert json.loads(resolved) == {
        "role": "arn:<AWS::Partition>:iam::<AWS::AccountId>:role/shelfwise-ci-churn-pipeline",
        "data": "s3://shelfwise-ci-lake-<AWS::AccountId>-eu-west-1/features/",
        "code": "s3://assets-<AWS::AccountId>/abc.py",
    }


def test_definition_that_splits_a_token_value_fails() -> None:
    def definition(inputs: PipelineDefinitionInputs) -> str:
        account = inputs.role_arn.split(":")[4]
        return json.dumps({"account": account})

    with pytest.raises(ValueError, match="splits a deployment value"):
        definition_with_tokens(definition, inputs_with_tokens())


#: Lambda's limit for the unzipped deployment package.
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


@pytest.mark.slow
def test_churn_function_bundle_is_complete_and_fits_lambda(tmp_path: Path) -> None:
    """CDK bundles the real churn function locally (no Docker): handler at the root, the library as a package,
    cp312 Linux wheels, under Lambda's size limit."""
    from aws_cdk import aws_kms as kms
    from shelfwise_cdk.constructs.python_function import ShelfwisePythonFunction

    app = App(outdir=str(tmp_path / "cdk.out"))
    stack = Stack(app, "Bundled")
    ShelfwisePythonFunction(
        stack,
        "Churn",
        handler="app.handler",
        code_dir=REPO_ROOT / "lambdas" / "churn",
        library_dirs=[REPO_ROOT / "shelfwise"],
        requirements=REPO_ROOT / "lambdas" / "churn" / "requirements.txt",
        log_key=kms.Key(stack, "Key"),
    )
    assembly = app.synth()
    (out,) = (d for d in Path(assembly.directory).glob("asset.*") if d.is_dir())
    assert (out / "app.py").is_file()
    assert (out / "shelfwise" / "config.py").is_file()
    for package in ("aws_lambda_powertools", "pydantic_settings", "xgboost"):
        assert (out / package).is_dir(), package
    for package in ("boto3", "botocore", "s3transfer"):  # the runtime has them
        assert not (out / package).exists(), package
        assert not list(out.glob(f"{package}-*.dist-info")), package
    compiled = [p.name for p in (out / "pydantic_core").glob("*.so")]
    assert compiled
    assert all("cpython-312-x86_64-linux-gnu" in name for name in compiled)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < LAMBDA_UNZIPPED_LIMIT, f"bundle is {size / 2**20:.0f} MiB unzipped"
