"""Job arguments: `--name value` pairs, Glue's own arguments ignored, a missing one named."""

from __future__ import annotations

import datetime as dt

import pytest

from shelfwise.glue_args import JobArgumentError, parse_date, parse_int, resolve_args, split_list


def test_required_and_optional_arguments_resolve() -> None:
    argv = ["job.py", "--JOB_NAME", "x", "--input_path", "s3://b/raw/", "--run_date", "2024-01-02"]
    resolved = resolve_args(argv, ["input_path"], {"run_date": "2000-01-01", "step_days": "28"})
    assert resolved == {"input_path": "s3://b/raw/", "run_date": "2024-01-02", "step_days": "28"}


def test_a_missing_required_argument_is_named() -> None:
    with pytest.raises(JobArgumentError, match="--output_path"):
        resolve_args(["job.py", "--input_path", "a"], ["input_path", "output_path"])


def test_bad_values_name_their_argument() -> None:
    with pytest.raises(JobArgumentError, match="--run_date: '2024-13-01' is not a date"):
        parse_date("run_date", "2024-13-01")
    with pytest.raises(JobArgumentError, match="--step_days: 0 is below the minimum 1"):
        parse_int("step_days", "0")
    with pytest.raises(JobArgumentError, match="--step_days: 'x' is not an integer"):
        parse_int("step_days", "x")
    assert parse_date("run_date", " 2024-02-29 ") == dt.date(2024, 2, 29)
    assert split_list("2024-01-01, 2024-02-01,,") == ["2024-01-01", "2024-02-01"]
