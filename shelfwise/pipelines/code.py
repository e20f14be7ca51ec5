"""The `sourcedir.tar.gz` every step of a domain's pipelines runs from, built the same way for AWS and locally.

It holds, at its root, the helpers of `sagemaker/common/` and the domain's scripts (`sagemaker/<domain>/`), and,
under their package paths, the pure library modules the domain lists (`shelfwise/churn/features.py`, ...), so the
scripts import the feature definitions and the scoring core instead of copying them. The archive is deterministic
(sorted, mtime 0, no owner, no gzip timestamp): the same sources give the same bytes, so a CDK asset changes only
when code changed and the pipeline definition stays byte-identical.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

from shelfwise.domain import REPO_ROOT, SAGEMAKER_COMMON_DIR, ModelPipeline

SOURCE_TARBALL = "sourcedir.tar.gz"


def source_files(pipeline: ModelPipeline) -> dict[str, Path]:
    """Archive name -> file: common helpers and scripts at the root, library modules under their package paths."""
    files: dict[str, Path] = {}
    for folder in (SAGEMAKER_COMMON_DIR, pipeline.scripts):
        scripts = sorted(p for p in folder.glob("*.py") if p.is_file())
        if not scripts:
            raise ValueError(f"no .py files in {folder}")
        for path in scripts:
            if path.name in files:
                raise ValueError(f"{path} and {files[path.name]} would both be {path.name} in the source tarball")
            files[path.name] = path
    for module in pipeline.library_modules:
        path = REPO_ROOT / module
        if not path.is_file():
            raise ValueError(f"library module {module} of pipeline {pipeline.name!r} does not exist")
        for package_init in _package_inits(Path(module)):
            files.setdefault(package_init.as_posix(), REPO_ROOT / package_init)
        files[Path(module).as_posix()] = path
    return files


def build_source_tarball(pipeline: ModelPipeline, dest: Path) -> Path:
    """Write the pipeline's deterministic `sourcedir.tar.gz` to `dest`."""
    return write_tarball(source_files(pipeline).items(), dest)


def write_tarball(files: Iterable[tuple[str, Path]], dest: Path) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in sorted(files):
            info = tarfile.TarInfo(name)
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    dest.parent.mkdir(parents=True, exist_ok=True)
    # gzip writes a timestamp and the file name into its header unless told not to.
    with dest.open("wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    return dest


def _package_inits(module: Path) -> list[Path]:
    """`shelfwise/churn/features.py` -> [`shelfwise/__init__.py`, `shelfwise/churn/__init__.py`]."""
    return [Path(*module.parts[: i + 1]) / "__init__.py" for i in range(len(module.parts) - 1)]
