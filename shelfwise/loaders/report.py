"""The accounting of a load: every input row is either loaded or counted under exactly one cleaning rule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pandas as pd
from rich.table import Table

Parsed = TypeVar("Parsed")


class ReconciliationError(AssertionError):
    """Input rows do not equal loaded rows plus the rows counted by the cleaning rules."""


@dataclass(frozen=True)
class CleaningRule:
    """A named rule; rows it selects go to `quarantine/<name>.parquet` with a `reason` column."""

    name: str
    description: str


def apply_rules(
    index: pd.Index, checks: Sequence[tuple[CleaningRule, Callable[[Parsed], pd.Series]]], parsed: Parsed
) -> tuple[pd.Series, pd.Series]:
    """The first rule each row breaks ("" = none, loaded) and why: a row counts under one rule only.

    Each check returns the reasons of the rows it selects, indexed like `index`.
    """
    rule = pd.Series("", index=index, dtype=object)
    reason = pd.Series("", index=index, dtype=object)
    for spec, check in checks:
        why = check(parsed)
        take = why.index[rule[why.index] == ""]
        rule[take] = spec.name
        reason[take] = why[take]
    return rule, reason


@dataclass
class LoadReport:
    """What a loader read, loaded and quarantined, per rule (rule order is the order rules were applied)."""

    source: Path
    out_dir: Path
    input_rows: int
    loaded_rows: int
    rules: dict[str, int]
    rule_descriptions: dict[str, str] = field(default_factory=dict)
    #: Values rewritten on rows that were loaded (e.g. lower-case stock codes); informational, not in the identity.
    normalised: dict[str, int] = field(default_factory=dict)
    #: The accountings of companion files loaded with the source (e.g. a regional holiday calendar).
    companions: list[LoadReport] = field(default_factory=list)

    @property
    def quarantined_rows(self) -> int:
        return sum(self.rules.values())

    def assert_reconciles(self) -> None:
        """Raise `ReconciliationError` unless input rows = loaded rows + the count of every rule."""
        if self.input_rows != self.loaded_rows + self.quarantined_rows:
            raise ReconciliationError(
                f"{self.source}: {self.input_rows:,} input rows != {self.loaded_rows:,} loaded + "
                f"{self.quarantined_rows:,} quarantined ({self.rules})"
            )

    def table(self) -> Table:
        """The reconciliation as a rich table."""
        table = Table(title=f"Load of {self.source.name} -> {self.out_dir}", title_justify="left")
        table.add_column("rows", no_wrap=True)
        table.add_column("count", justify="right")
        table.add_column("rule")
        table.add_row("input", f"{self.input_rows:,}", "")
        table.add_row("loaded", f"{self.loaded_rows:,}", "")
        for name, count in self.rules.items():
            table.add_row(f"quarantine/{name}", f"{count:,}", self.rule_descriptions.get(name, ""))
        for name, count in self.normalised.items():
            table.add_row(f"(normalised) {name}", f"{count:,}", "loaded after rewriting a value")
        reconciled = self.input_rows == self.loaded_rows + self.quarantined_rows
        table.add_row(
            "loaded + quarantined",
            f"{self.loaded_rows + self.quarantined_rows:,}",
            "= input" if reconciled else "!= input: NOT RECONCILED",
            style="bold" if reconciled else "bold red",
        )
        return table
