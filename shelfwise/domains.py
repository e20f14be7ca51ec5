"""The registered domains, in the order the daily chain runs them. Adding a domain is one line here."""

from __future__ import annotations

from shelfwise.churn.domain import DOMAIN as CHURN
from shelfwise.curation.domain import DOMAIN as CURATION
from shelfwise.demand.domain import DOMAIN as DEMAND
from shelfwise.domain import Domain, GlueJob, ModelPipeline
from shelfwise.visual.domain import DOMAIN as VISUAL

DOMAINS: tuple[Domain, ...] = (CURATION, CHURN, DEMAND, VISUAL)


class UnknownDomainError(ValueError):
    """No domain (or pipeline, or job) of that name; the message lists the valid ones."""


def domain(name: str) -> Domain:
    for candidate in DOMAINS:
        if candidate.name == name:
            return candidate
    raise UnknownDomainError(f"unknown domain {name!r}; domains: {', '.join(d.name for d in DOMAINS)}")


def glue_jobs() -> dict[str, GlueJob]:
    """Every domain's Glue jobs by name, in run order."""
    jobs: dict[str, GlueJob] = {}
    for owner in DOMAINS:
        for job in owner.glue_jobs:
            if job.name in jobs:
                raise ValueError(f"Glue job {job.name!r} is declared twice")
            jobs[job.name] = job
    return jobs


def pipelines() -> dict[str, ModelPipeline]:
    """Every domain's model pipelines by name."""
    return {d.pipeline.name: d.pipeline for d in DOMAINS if d.pipeline is not None}


def pipeline(name: str) -> ModelPipeline:
    found = pipelines()
    if name not in found:
        raise UnknownDomainError(f"unknown pipeline {name!r}; pipelines: {', '.join(sorted(found))}")
    return found[name]
