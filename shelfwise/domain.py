"""What a domain contributes to the platform, declared as data.

A domain (churn, demand, visual search, and the shared order curation) is one package under `shelfwise/` with a
`domain.py` that builds one `Domain`. The platform reads these declarations and knows no domain by name: the
local Glue runner and the CDK feature-jobs stack read `glue_jobs`, the pipeline runner and the pipeline stacks read
`pipeline`, the local API and the API stack read `api`, the orchestration reads all of them in order, and the data
lake stack turns `retention` into lifecycle rules. `shelfwise.domains.DOMAINS` lists the registered domains.

Declarations import nothing heavy (no Spark, pandas, XGBoost or CDK), so every part can read them cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shelfwise.pipelines.spec import PipelineConfig, PipelineSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
GLUE_JOBS_DIR = REPO_ROOT / "glue_jobs"
LAMBDAS_DIR = REPO_ROOT / "lambdas"
SAGEMAKER_DIR = REPO_ROOT / "sagemaker"
#: Helpers every SageMaker step of every domain imports (staged with each step).
SAGEMAKER_COMMON_DIR = SAGEMAKER_DIR / "common"


@dataclass(frozen=True)
class GlueJob:
    """A Glue job: its entry script `glue_jobs/<name>.py`, and the lake prefixes behind its path arguments.

    Its role may read exactly `inputs` and read and write exactly `outputs` and `state` (a prefix the job reads
    and rewrites on every run, passed as `--state_path`: what it has already processed). `run_date_option` names
    the option that receives the date of the scheduled run (so a redriven run redoes the same day).
    """

    name: str
    description: str
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    options: tuple[str, ...] = ()
    run_date_option: str | None = None
    state: str | None = None

    @property
    def prefixes(self) -> dict[str, str]:
        """Every path argument and its lake prefix."""
        return {**self.inputs, **self.outputs, **({"state_path": self.state} if self.state else {})}

    @property
    def script(self) -> Path:
        return GLUE_JOBS_DIR / f"{self.name}.py"

    @property
    def resource_suffix(self) -> str:
        """The job's name in AWS after the deployment prefix: `curate_orders` -> `curate-orders`."""
        return self.name.replace("_", "-")


@dataclass(frozen=True)
class ModelPipeline:
    """A domain's two SageMaker pipelines and the code their steps run.

    `training` builds prepare -> train -> evaluate -> gate -> register; `scoring` batch-scores the serving features
    with the newest approved model. Every step gets the same `sourcedir.tar.gz`: the files of `scripts`, the common
    helpers in `sagemaker/common/`, and the pure `library_modules` of this package (feature definitions, scoring),
    so a step and the API compute a feature or a score with the same code.
    """

    name: str
    scripts: Path
    library_modules: tuple[str, ...]
    training: Callable[[PipelineConfig], PipelineSpec]
    scoring: Callable[[PipelineConfig], PipelineSpec]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    #: Parameters that take the partitions the day's feature job wrote, each `<prefix><partition_name>=<run date>/`:
    #: parameter -> features prefix. The scoring pipeline always gets them; the training pipeline too when
    #: `training_takes_run_partitions` (demand learns from the day's history, churn from every cutoff).
    run_partitions: Mapping[str, str]
    #: Where a scoring execution leaves the online records the publisher reads: `<prefix><execution id>/`.
    predictions_prefix: str
    partition_name: str = "cutoff"
    training_takes_run_partitions: bool = False
    #: Pinned packages the steps need beyond their framework image (`requirements.txt` beside the scripts), staged
    #: as a wheelhouse channel; None when the image has everything.
    requirements: Path | None = None
    #: (backend, endpoint) parameter names of a scoring pipeline that builds its domain's search index
    #: (`ApiFunction.search_index`): the deployment grants it writes on the backend and the chain passes it the
    #: backend's kind and, for the OpenSearch ones, endpoint. None for a pipeline that builds no index.
    search_parameters: tuple[str, str] | None = None

    @property
    def model_group(self) -> str:
        """The model package group, before the deployment's prefix (`Settings.model_group`)."""
        return self.name

    def run_partition_keys(self, run_date: str) -> dict[str, str]:
        """Parameter -> the lake prefix of the partition the feature job wrote for `run_date` (YYYY-MM-DD)."""
        return {name: f"{prefix}{self.partition_name}={run_date}/" for name, prefix in self.run_partitions.items()}


@dataclass(frozen=True)
class ApiRoute:
    """One method of the REST API; `path` is an API Gateway resource template (`/customers/{customer_id}/churn`)."""

    method: str
    path: str
    summary: str
    #: JSON schema (draft 4) that API Gateway checks the body against before the function runs.
    request_schema: Mapping[str, Any] | None = None
    query_parameters: tuple[str, ...] = ()

    @property
    def path_parameters(self) -> tuple[str, ...]:
        return tuple(part[1:-1] for part in self.path.split("/") if part.startswith("{") and part.endswith("}"))


@dataclass(frozen=True)
class SearchIndex:
    """A vector index an API function searches. Where it is served from (an embedded faiss index, an OpenSearch
    domain or a Serverless collection) is a deployment setting; these names hold in every one."""

    #: The name searches use: the OpenSearch alias (or Serverless index prefix) and the prefix of every version.
    name: str
    #: Lake prefix of the embedded index's versions and of the pointer naming the live version.
    lake_prefix: str


@dataclass(frozen=True)
class ApiFunction:
    """The Lambda behind a domain's routes: `lambdas/<name>/app.handler`, bundled with `requirements.txt`."""

    name: str
    description: str
    routes: tuple[ApiRoute, ...]
    #: Lake prefixes it reads objects from (model artifacts); none for a function that serves no model, which then
    #: gets no access to the model registry either.
    reads: tuple[str, ...]
    memory_mb: int = 1024
    #: The vector index it searches, if any: the API stack provisions the deployment's backend and grants it reads.
    search_index: SearchIndex | None = None

    @property
    def code_dir(self) -> Path:
        return LAMBDAS_DIR / self.name


@dataclass(frozen=True)
class Publisher:
    """The Lambda that writes a scoring run's online records to the online store: `lambdas/<name>/app.handler`."""

    name: str
    description: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    memory_mb: int = 1024

    @property
    def code_dir(self) -> Path:
        return LAMBDAS_DIR / self.name


@dataclass(frozen=True)
class Retention:
    """A lake prefix that grows with every run, and how many days its objects are kept."""

    prefix: str
    days: int


@dataclass(frozen=True)
class DemoReport:
    """What a domain shows at the end of the local run: a table of figures, notes and a picture."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    picture: Path | None = None


@dataclass(frozen=True)
class DemoRequest:
    """A request the local run sends to the API, and why (the printed table says it)."""

    method: str
    path: str
    body: Mapping[str, Any] | None = None
    note: str = ""


@dataclass(frozen=True)
class DemoHooks:
    """The domain's part of `shelfwise demo`: figures after its pipelines ran, and requests to show its API.

    `report(lake, world_dir, evaluation)` gets the training run's evaluation document; `requests(lake,
    predictions_prefix)` the scoring run's output. Both import what they need inside, so declarations stay light.
    """

    report: Callable[[Any, Path, Mapping[str, Any]], DemoReport]
    requests: Callable[[Any, str], list[DemoRequest]]
    #: Training pipeline parameters the local run uses unless `-p` says otherwise (a quicker model on one machine).
    training_params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    glue_jobs: tuple[GlueJob, ...] = ()
    pipeline: ModelPipeline | None = None
    api: ApiFunction | None = None
    publisher: Publisher | None = None
    retention: tuple[Retention, ...] = ()
    demo: DemoHooks | None = None
    #: Lake prefixes the domain owns (features, models, predictions, quarantine): for documentation and checks.
    prefixes: tuple[str, ...] = field(default_factory=tuple)
