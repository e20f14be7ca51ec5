"""What the visual routes read: the configured search backend's index and the query model, each loaded on first use
and then kept for the container's life.

Configuration (`SearchConfig`, read once) comes from the variables the CDK's `VectorSearch` sets:
`SHELFWISE_SEARCH_BACKEND` (embedded | opensearch | opensearch-serverless), `SHELFWISE_SEARCH_ENDPOINT` (the
OpenSearch backends), `SHELFWISE_SEARCH_INDEX` (their alias or index prefix) and `SHELFWISE_SEARCH_PREFIX` (the lake
prefix of the versions, `shelfwise.visual.search_store`). Embedded: the index and the model of the version
CURRENT.json named when the container first asked, so they always belong together; the similar route never loads the
model. OpenSearch: searches go to the domain or collection (SigV4) and the model is the lake's current one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shelfwise.config import ConfigError
from shelfwise.visual.index_store import BlobStore, IndexNotFoundError
from shelfwise.visual.search_store import LAKE_PREFIX, QueryModel, current_version, read_query_model

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

    from shelfwise.visual.index import VectorIndex

Backend = Literal["embedded", "opensearch", "opensearch-serverless"]
#: The OpenSearch alias (or Serverless index prefix) of the catalogue's vectors.
INDEX_NAME = "visual-products"
ENV_PREFIX = "SHELFWISE_SEARCH_"


class SearchConfig(BaseSettings):
    """Where the index is served from; the fields are the `SHELFWISE_SEARCH_*` variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    backend: Backend = "embedded"
    endpoint: str | None = Field(None, pattern=r"^(https://)?[A-Za-z0-9.-]+/?$")
    index: str = Field(INDEX_NAME, pattern=r"^[a-z0-9][a-z0-9_-]{0,200}$")
    prefix: str = LAKE_PREFIX

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        if self.prefix != LAKE_PREFIX:
            # The version layout is fixed by the index store; another prefix would be read nowhere.
            raise ValueError(f"prefix must be {LAKE_PREFIX!r} (where the index store writes), got {self.prefix!r}")
        if self.backend != "embedded" and not self.endpoint:
            raise ValueError(f"backend {self.backend} needs {ENV_PREFIX}ENDPOINT")
        return self


def load_search_config() -> SearchConfig:
    """The configuration from the environment; ConfigError naming each malformed variable."""
    try:
        return SearchConfig()
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            name = f"{ENV_PREFIX}{str(problem['loc'][0]).upper()}" if problem["loc"] else "SHELFWISE_SEARCH_*"
            shown = os.environ.get(name, problem.get("input")) if problem["loc"] else None
            problems.append(f"{name}={shown!r}: {problem['msg']}")
        raise ConfigError("invalid search setting: " + "; ".join(problems)) from None


@dataclass(frozen=True)
class LoadedIndex:
    index: VectorIndex
    #: The embedded index's lake version, or the live OpenSearch index's name.
    version: str


@dataclass
class VisualService:
    """The backend behind the routes; each part loaded on first use. A load that fails is retried by the next
    request (nothing half-loaded is kept)."""

    config: SearchConfig
    store: BlobStore
    #: The OpenSearch client, made on first use (only the OpenSearch backends call it).
    opensearch: Callable[[], OpenSearch]
    _version: str | None = field(default=None, init=False)
    _index: LoadedIndex | None = field(default=None, init=False)
    _model: QueryModel | None = field(default=None, init=False)

    def version(self) -> str:
        """The lake version served: the query model's, and the embedded index's."""
        if self._version is None:
            self._version = current_version(self.store)
        return self._version

    def model(self) -> QueryModel:
        if self._model is None:
            self._model = read_query_model(self.store, self.version())
        return self._model

    def index(self) -> LoadedIndex:
        if self._index is None:
            self._index = self._load_index()
        return self._index

    def _load_index(self) -> LoadedIndex:
        if self.config.backend == "embedded":
            import faiss

            from shelfwise.visual.faiss_index import load_index

            faiss.omp_set_num_threads(1)  # several threads make one query slower
            return LoadedIndex(load_index(self.store, self.version()), self.version())
        from shelfwise.visual.opensearch_index import FLAVOURS, OpenSearchIndex, OpenSearchSettings

        settings = OpenSearchSettings(
            self.config.index, self.model().embedder.dimension, flavour=FLAVOURS[self.config.backend]
        )
        index = OpenSearchIndex(self.opensearch(), settings, pointer_store=self.store)
        live = index.live_index()
        if live is None:
            raise IndexNotFoundError(f"no version of OpenSearch index {self.config.index} is live")
        return LoadedIndex(index, live)
