"""The model an API container serves: the newest approved package, re-checked at most every `ttl` seconds.

A warm container asks the registry again once its answer is older than the TTL, so a new approval is served
without a cold start and a rejected package stops being served; in between every request is a memory read. When
no package is approved the answer is cached too (negative caching), with a backoff that doubles up to the TTL, so
a stream of requests cannot hammer the registry. When the registry cannot be reached, the model already loaded
keeps being served until the registry answers again.

An artifact is verified before it is served: its sha256 must be the one recorded at registration, and the domain's
`load` must accept it (the churn loader refuses another feature-set version). A package that fails is remembered
and never retried until another package becomes the newest approved one.

Generic: the domain passes its registry group and its loader; nothing here knows churn.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from shelfwise.pipelines.registry import ApprovedModel, NoApprovedModelError, newest_approved

Model = TypeVar("Model")
MIN_BACKOFF_S = 15.0


class ModelUnavailableError(RuntimeError):
    """Nothing can be served; `reason` is safe to show a client, the message (for logs) says why in detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class ArtifactVerificationError(ValueError):
    """The artifact's bytes are not the ones registered."""


@dataclass(frozen=True)
class Served(Generic[Model]):
    model: Model
    package: ApprovedModel


@dataclass
class _State(Generic[Model]):
    served: Served[Model] | None = None
    failed_arn: str | None = None
    failure: ModelUnavailableError | None = None
    next_check: float = 0.0
    backoff: float = MIN_BACKOFF_S


class ModelCache(Generic[Model]):
    """The served model of one registry group; thread-safe, one registry call per TTL at most."""

    def __init__(
        self,
        group: str,
        load: Callable[[Path], Model],
        *,
        ttl_seconds: float,
        sagemaker: Callable[[], Any],
        s3: Callable[[], Any],
        expected_owner: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str, dict[str, Any]], None] = lambda _event, _fields: None,
    ) -> None:
        self.group, self.load, self.ttl = group, load, ttl_seconds
        self.sagemaker, self.s3, self._owner = sagemaker, s3, expected_owner or {}
        self.clock, self._on_event = clock, on_event
        self._state: _State[Model] = _State()
        self._lock = threading.Lock()

    def get(self) -> Served[Model]:
        """The model to serve now; raises `ModelUnavailableError` when there is none."""
        with self._lock:
            if self.clock() >= self._state.next_check:
                self._refresh()
            if self._state.served is not None:
                return self._state.served
            raise self._state.failure or ModelUnavailableError("model_unavailable", "no model loaded")

    def _refresh(self) -> None:
        state = self._state
        try:
            package = newest_approved(self.group, self.sagemaker())
        except NoApprovedModelError as exc:
            # Nothing approved (or the group cannot be read): serve nothing, ask again after a growing pause.
            state.served = None
            state.failure = ModelUnavailableError("no_approved_model", str(exc))
            self._retry_later(str(exc))
            return
        except Exception as exc:  # the registry is unreachable: keep what is loaded, ask again later
            self._retry_later(f"registry error: {exc!r}")
            if state.served is None:
                state.failure = ModelUnavailableError("model_unavailable", f"registry error: {exc!r}")
            return
        if state.served is not None and state.served.package.arn == package.arn:
            self._checked()
            return
        if package.arn == state.failed_arn:
            self._checked()  # already refused; wait for another approval
            return
        try:
            model = self._download_and_load(package)
        except Exception as exc:
            state.served, state.failed_arn = None, package.arn
            state.failure = ModelUnavailableError("model_rejected", f"package {package.arn} refused: {exc}")
            self._on_event("model refused", {"package": package.arn, "error": str(exc)})
            self._checked()
            return
        state.served, state.failed_arn, state.failure = Served(model, package), None, None
        self._on_event("model loaded", {"package": package.arn, "artifact": package.artifact_uri})
        self._checked()

    def _checked(self) -> None:
        self._state.next_check = self.clock() + self.ttl
        self._state.backoff = MIN_BACKOFF_S

    def _retry_later(self, reason: str) -> None:
        state = self._state
        pause = min(state.backoff, self.ttl)
        state.next_check = self.clock() + pause
        state.backoff = min(state.backoff * 2, max(self.ttl, MIN_BACKOFF_S))
        self._on_event("registry check failed", {"reason": reason, "retry_in_s": pause})

    def _download_and_load(self, package: ApprovedModel) -> Model:
        match = re.fullmatch(r"s3://([^/]+)/(.+)", package.artifact_uri)
        if match is None:
            raise ArtifactVerificationError(f"artifact URI is not s3://bucket/key: {package.artifact_uri!r}")
        if not package.sha256:
            raise ArtifactVerificationError("the package records no artifact sha256")
        workdir = Path(tempfile.mkdtemp(prefix=f"{self.group}-model-"))
        archive = workdir / "model.tar.gz"
        self.s3().download_file(match.group(1), match.group(2), str(archive), ExtraArgs=dict(self._owner) or None)
        digest = sha256_of(archive)
        if digest != package.sha256:
            raise ArtifactVerificationError(f"artifact sha256 {digest} differs from the registered {package.sha256}")
        return self.load(archive)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
