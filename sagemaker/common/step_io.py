"""Helpers every SageMaker step script imports: reading Parquet folders and channels, hyperparameters, hashing.

Staged at the root of every domain's `sourcedir.tar.gz` (`shelfwise.pipelines.code`), beside the scripts, so one
copy serves every step in the containers and locally. Needs pandas and pyarrow, which the framework images have.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tarfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def parquet_files(root: Path) -> list[Path]:
    """The data files under `root` (Spark's `_SUCCESS` and hidden files left out), in a stable order."""
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith((".", "_")))


def read_partitioned(root: Path, partition: str, default: str | None = None) -> pd.DataFrame:
    """Every Parquet file under `root`; `partition` comes from the file, from its `<partition>=value` folder, or is
    `default` (for an input that is one partition's folder, whose files SageMaker lays out without it).

    Raises SystemExit naming the folder when there is nothing to read.
    """
    files = parquet_files(root)
    if not files:
        raise SystemExit(f"no Parquet files under {root}")
    frames = []
    for path in files:
        frame = pq.read_table(path).to_pandas()
        if partition not in frame.columns:
            value = partition_value(path, partition) or default
            if value is None:
                raise SystemExit(f"{path} has no {partition!r} column and is not under a {partition}=... folder")
            frame[partition] = value
        frames.append(frame)
    data: pd.DataFrame = pd.concat(frames, ignore_index=True)
    data[partition] = pd.to_datetime(data[partition], errors="coerce").dt.normalize()
    return data


def partition_value(path: Path, name: str) -> str | None:
    """The value of the nearest `<name>=value` folder above `path`."""
    folder = next((p.name for p in path.parents if p.name.startswith(f"{name}=")), None)
    return None if folder is None else folder.split("=", 1)[1]


def read_channel(directory: Path) -> pd.DataFrame:
    """Every Parquet file of a channel or step output, concatenated."""
    files = parquet_files(directory)
    if not files:
        raise SystemExit(f"no Parquet files in {directory}")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def write_json(document: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def one_archive(model_dir: Path) -> Path:
    """The one `*.tar.gz` under `model_dir` (a model channel or input); SystemExit naming what was found otherwise."""
    archives = sorted(model_dir.rglob("*.tar.gz"))
    if len(archives) != 1:
        raise SystemExit(f"expected one model archive in {model_dir}, found {[a.name for a in archives]}")
    return archives[0]


def registered_archive(model_dir: Path, expected_sha256: str) -> Path:
    """The model archive, after checking its bytes are the ones recorded when its package was registered."""
    archive = one_archive(model_dir)
    if not expected_sha256:
        raise SystemExit("--model-sha256 is required: the sha256 recorded when the model package was registered")
    actual = sha256_of(archive)
    if actual != expected_sha256:
        raise SystemExit(f"model archive sha256 {actual} differs from the registered {expected_sha256}; refusing it")
    return archive


def unpack_archive(archive: Path, target: Path) -> Path:
    """A model.tar.gz unpacked into `target` (members that would land outside it are refused); returns `target`."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(target, filter="data")
    return target


def pack_folder(folder: Path, archive: Path) -> Path:
    """The files of `folder` as a model.tar.gz at `archive`, in name order; returns `archive`."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def hyperparameters_file(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Known hyperparameters from the training container's hyperparameters.json (strings, JSON-quoted by some SDKs);
    use as `parser.set_defaults(**hyperparameters_file(parser))` so that command-line arguments still win."""
    config_dir = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"))
    path = config_dir / "hyperparameters.json"
    if not path.exists():
        return {}
    known = {action.dest for action in parser._actions}
    values: dict[str, str] = {}
    for key, raw in json.loads(path.read_text(encoding="utf-8")).items():
        if key.replace("-", "_") not in known:
            continue
        try:
            decoded = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            decoded = raw
        values[key.replace("-", "_")] = str(decoded)
    return values


def install_wheelhouse(wheels: Path) -> int:
    """Install every wheel of a staged wheelhouse (wheels, or a zip of them as CDK stages it), offline: the image
    lacks them and a training job has no network. Returns how many were installed. Locally the folder does not exist
    and the environment already has them."""
    import subprocess
    import sys
    import tempfile
    import zipfile

    found = sorted(wheels.rglob("*.whl")) if wheels.is_dir() else []
    for archive in sorted(wheels.rglob("*.zip")) if wheels.is_dir() else []:
        unpacked = Path(tempfile.mkdtemp(prefix="wheelhouse-"))
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(unpacked)
        found += sorted(unpacked.rglob("*.whl"))
    if found:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"]
        subprocess.run([*command, *map(str, found)], check=True)
    return len(found)
