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
from shelfwise_cdk.deployment import (
    API_AUTH_KEY,
    JWT_AUDIENCE_KEY,
    JWT_ISSUER_KEY,
    WAF_KEY,
    DeploymentContextError,
    cdk_json_context,
    deployment_from_context,
)
from shelfwise_cdk.nag import render
from shelfwise_cdk.packaging import build_python_zip, pinned_requirements, tree_hash
from shelfwise_cdk.stacks.api import json_schema
from shelfwise_cdk.stacks.data_lake import lake_bucket_name, lake_lifecycle_rules
from shelfwise_cdk.stacks.model_pipelines import definition_with_tokens
from shelfwise_cdk.stacks.online_store import table_keys

from shelfwise.config import Settings
from shelfwise.domain import Retention
from shelfwise.domains import DOMAINS, glue_jobs
from shelfwise.local_aws import online_table_spec
from shelfwise.pipelines.spec import PipelineConfig

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
    deployment = deployment_from_context(values.get, REPO_ROOT)
    assert deployment.settings.env == values["shelfwise:env"]
    assert (deployment.api_auth.mode, deployment.waf) == ("iam", True)


def test_cdk_json_sets_every_flag_this_cdk_version_recommends() -> None:
    """`cdk synth` counts the recommended flags a project leaves unset (`cdk init` writes them all)."""
    import tarfile

    import aws_cdk

    (bundle,) = Path(aws_cdk.__file__).parent.joinpath("_jsii").glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(bundle) as tar:
        member = tar.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        recommended = json.loads(member.read())
    values = cdk_json_context(REPO_ROOT / "cdk.json")
    assert sorted(set(recommended) - set(values)) == []
    # every flag at the recommended value but one: CDK's construct telemetry in template metadata stays off
    differing = {k for k, v in recommended.items() if values[k] != v}
    assert differing == {"@aws-cdk/core:enableAdditionalMetadataCollection"}
    assert values["@aws-cdk/core:defaultCrossStackReferences"] == "weak"


def test_api_auth_and_waf_come_from_context_and_are_checked() -> None:
    jwt = deployment_from_context(
        context({API_AUTH_KEY: "jwt", JWT_ISSUER_KEY: "https://issuer.example/", JWT_AUDIENCE_KEY: " shop "}), REPO_ROOT
    )
    assert (jwt.api_auth.mode, jwt.api_auth.issuer, jwt.api_auth.audience) == ("jwt", "https://issuer.example", "shop")
    assert deployment_from_context(context({WAF_KEY: "false"}), REPO_ROOT).waf is False
    with pytest.raises(DeploymentContextError, match=f"{API_AUTH_KEY}='cookie'"):
        deployment_from_context(context({API_AUTH_KEY: "cookie"}), REPO_ROOT)
    with pytest.raises(DeploymentContextError, match=JWT_ISSUER_KEY):
        deployment_from_context(context({API_AUTH_KEY: "jwt", JWT_AUDIENCE_KEY: "x"}), REPO_ROOT)
    with pytest.raises(DeploymentContextError, match=JWT_AUDIENCE_KEY):
        deployment_from_context(context({API_AUTH_KEY: "jwt", JWT_ISSUER_KEY: "https://issuer.example"}), REPO_ROOT)
    with pytest.raises(DeploymentContextError, match=f"{WAF_KEY}='maybe'"):
        deployment_from_context(context({WAF_KEY: "maybe"}), REPO_ROOT)


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
    for spec in glue_jobs().values():
        script = spec.script.read_text()
        for argument in spec.prefixes:
            assert f'"{argument}"' in script, f"{spec.script.name} does not parse --{argument}"


def test_growing_prefixes_expire_and_raw_data_never_does() -> None:
    rules = lake_lifecycle_rules([r for d in DOMAINS for r in d.retention])
    expiring = {r.prefix: r.expiration for r in rules if r.expiration is not None}
    assert {"features/churn/serving/", "pipelines/churn/", "predictions/churn/", "quarantine/churn-"} <= set(expiring)
    assert "quarantine/curate_orders/" in expiring
    assert not [p for p in expiring if p.startswith(("raw/", "curated/", "models/"))]
    with pytest.raises(ValueError, match="outside raw/"):
        lake_lifecycle_rules([Retention("raw/order_lines/", 7)])


def test_glue_modules_are_pinned_with_their_dependencies_from_the_constraints() -> None:
    pins = pinned_requirements(["pydantic"], REPO_ROOT / "constraints.txt")
    assert "pydantic==2.14.3" in pins
    assert any(p.startswith("pydantic-core==") for p in pins)
    assert all("==" in p for p in pins)


def test_an_unpinned_dependency_is_refused(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("pydantic==2.14.3\n")
    with pytest.raises(ValueError, match=r"is not pinned in constraints\.txt"):
        pinned_requirements(["pydantic"], constraints)


def test_request_schemas_translate_to_api_gateway_models() -> None:
    from aws_cdk import aws_apigateway as apigw

    from shelfwise.churn.domain import score_request_schema

    schema = json_schema(score_request_schema())
    assert (schema.schema, schema.required, schema.additional_properties) == (
        apigw.JsonSchemaVersion.DRAFT4,
        ["features"],
        False,
    )
    features = (schema.properties or {})["features"]
    assert (features.properties or {})["recency_days"].type == apigw.JsonSchemaType.INTEGER
    assert (features.properties or {})["monetary"].type == apigw.JsonSchemaType.NUMBER
    with pytest.raises(ValueError, match="does not translate"):
        json_schema({"type": "object", "patternProperties": {}})


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


def test_pip_command_targets_the_lambda_platform_pinned_by_the_constraints(tmp_path: Path) -> None:
    bundler = PipLocalBundling(
        sources=[],
        requirements=tmp_path / "r.txt",
        constraints=REPO_ROOT / "constraints.txt",
        platforms=("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
    )
    command = bundler.pip_command(tmp_path / "out")
    assert command[command.index("-c") + 1] == str(REPO_ROOT / "constraints.txt")
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


def config_with_tokens() -> PipelineConfig:
    return PipelineConfig(
        pipeline_name="shelfwise-ci-churn",
        role_arn=f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/shelfwise-ci-churn-pipeline",
        region="eu-west-1",
        bucket=f"shelfwise-ci-lake-{Aws.ACCOUNT_ID}-eu-west-1",
        model_package_group="churn",
        source_uri=f"s3://assets-{Aws.ACCOUNT_ID}/abc.tar.gz",
        source_file="abc.tar.gz",
        kms_key_arn=f"arn:{Aws.PARTITION}:kms:eu-west-1:{Aws.ACCOUNT_ID}:key/k",
    )


def test_definition_gets_plain_values_and_the_tokens_come_back(stack: Stack) -> None:
    seen: list[PipelineConfig] = []

    def build(config: PipelineConfig) -> PipelineConfig:
        seen.append(config)
        return config

    def render_spec(config: PipelineConfig) -> str:
        return json.dumps(
            {"role": config.role_arn, "data": f"s3://{config.bucket}/features/", "code": config.source_uri,
             "key": config.kms_key_arn}
        )  # fmt: skip

    body = definition_with_tokens(render_spec, build, config_with_tokens())
    plain = seen[0]
    assert not any(Token.is_unresolved(v) for v in (plain.role_arn, plain.bucket, plain.source_uri, plain.kms_key_arn))
    assert plain.role_arn.startswith("arn:")
    assert plain.source_uri.startswith("s3://")
    resolved = render(stack, body)
    assert json.loads(resolved) == {
        "role": "arn:<AWS::Partition>:iam::<AWS::AccountId>:role/shelfwise-ci-churn-pipeline",
        "data": "s3://shelfwise-ci-lake-<AWS::AccountId>-eu-west-1/features/",
        "code": "s3://assets-<AWS::AccountId>/abc.tar.gz",
        "key": "arn:<AWS::Partition>:kms:eu-west-1:<AWS::AccountId>:key/k",
    }


def test_definition_that_splits_a_token_value_fails() -> None:
    def render_spec(config: PipelineConfig) -> str:
        return json.dumps({"account": config.role_arn.split(":")[4]})

    with pytest.raises(ValueError, match="splits a deployment value"):
        definition_with_tokens(render_spec, lambda config: config, config_with_tokens())


#: Lambda's limit for the unzipped deployment package.
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def bundled_function(tmp_path: Path, name: str) -> Path:
    """The folder CDK bundles locally (no Docker) for the real function `lambdas/<name>`."""
    from aws_cdk import aws_kms as kms
    from shelfwise_cdk.constructs.python_function import ShelfwisePythonFunction

    app = App(outdir=str(tmp_path / "cdk.out"))
    stack = Stack(app, "Bundled")
    ShelfwisePythonFunction(
        stack,
        "Function",
        handler="app.handler",
        code_dir=REPO_ROOT / "lambdas" / name,
        library_dirs=[REPO_ROOT / "shelfwise"],
        requirements=REPO_ROOT / "lambdas" / name / "requirements.txt",
        constraints=REPO_ROOT / "constraints.txt",
        log_key=kms.Key(stack, "Key"),
    )
    assembly = app.synth()
    (out,) = (d for d in Path(assembly.directory).glob("asset.*") if d.is_dir())
    return out


@pytest.mark.slow
def test_churn_function_bundle_is_complete_and_fits_lambda(tmp_path: Path) -> None:
    """CDK bundles the real churn function locally (no Docker): handler at the root, the library as a package,
    cp312 Linux wheels, under Lambda's size limit."""
    out = bundled_function(tmp_path, "churn")
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


@pytest.mark.slow
def test_demand_function_bundle_has_numpy_and_neither_pandas_nor_torch(tmp_path: Path) -> None:
    """The demand function reads precomputed forecasts: numpy for the decisions, none of the training stack."""
    out = bundled_function(tmp_path, "demand")
    assert (out / "app.py").is_file()
    assert (out / "shelfwise" / "demand" / "api.py").is_file()
    for package in ("aws_lambda_powertools", "pydantic_settings", "numpy"):
        assert (out / package).is_dir(), package
    for package in ("pandas", "torch", "xgboost", "pyarrow", "boto3", "botocore"):
        assert not (out / package).exists(), package
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < LAMBDA_UNZIPPED_LIMIT / 2, f"bundle is {size / 2**20:.0f} MiB unzipped"
