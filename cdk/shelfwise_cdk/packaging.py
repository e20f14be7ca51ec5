"""Deterministic code packages built at synth time: the same sources give the same bytes and the same asset hash,
so `cdk diff` shows a change only when code changed."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

#: Zip entries get this timestamp (the zip format's earliest) instead of the files' mtimes.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIPPED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})


def source_files(root: Path) -> Iterator[Path]:
    """Files under `root` that belong in a package, in a stable order (no caches, bytecode or dotfiles)."""
    if not root.is_dir():
        raise FileNotFoundError(f"source folder {root} does not exist")
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p in _SKIPPED_DIRS or p.startswith(".") for p in parts):
            continue
        if path.is_file() and path.suffix not in _SKIPPED_SUFFIXES:
            yield path


def build_python_zip(packages: Sequence[Path], dest: Path) -> Path:
    """Zip each package folder under its own name (`shelfwise/config.py`, ...), as `--extra-py-files` expects."""
    names = [p.name for p in packages]
    if len(set(names)) != len(names):
        raise ValueError(f"package names must be unique, got {names}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for package in packages:
            for path in source_files(package):
                arcname = (Path(package.name) / path.relative_to(package)).as_posix()
                info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return dest


def tree_hash(roots: Sequence[Path], extra: Sequence[Path] = ()) -> str:
    """SHA-256 over the relative paths and bytes of every source file under `roots` and of the `extra` files."""
    digest = hashlib.sha256()
    for root in roots:
        for path in source_files(root):
            _add(digest, f"{root.name}/{path.relative_to(root).as_posix()}", path)
    for path in extra:
        _add(digest, path.name, path)
    return digest.hexdigest()


def _add(digest: hashlib._Hash, name: str, path: Path) -> None:
    digest.update(name.encode())
    digest.update(b"\0")
    digest.update(hashlib.sha256(path.read_bytes()).digest())


def pinned_requirements(names: Sequence[str], constraints: Path) -> list[str]:
    """`name==version` for each of `names` and everything it depends on (as installed here, markers evaluated for
    this interpreter), each at the version `constraints` pins; a dependency the constraints do not pin is an error,
    so a deployment never installs a version the project did not test."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.strip()
    resolved: dict[str, str] = {}
    pending = [Requirement(name) for name in names]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in resolved:
            continue
        if name not in pins:
            raise ValueError(f"{requirement.name} is not pinned in {constraints.name}; run `make lock`")
        resolved[name] = pins[name]
        try:
            dependencies = requires(requirement.name) or []
        except PackageNotFoundError:
            raise ValueError(f"{requirement.name} is not installed here; cannot list its dependencies") from None
        for text in dependencies:
            dependency = Requirement(text)
            if dependency.marker is None or dependency.marker.evaluate({"extra": ""}):
                pending.append(dependency)
    return [f"{name}=={version}" for name, version in sorted(resolved.items())]
