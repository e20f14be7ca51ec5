"""Bundle a Python Lambda on this machine, without Docker: copy the sources, then pip-install manylinux wheels for
the Lambda runtime into the bundle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, ILocalBundling

from shelfwise_cdk.packaging import source_files

#: Packages every Python Lambda runtime already has. Requirements pull them in (the tracer extra depends on botocore),
#: and shipping them again costs ~30 MB of a bundle that must stay under 250 MB unzipped.
RUNTIME_PACKAGES: tuple[str, ...] = ("boto3", "botocore", "s3transfer")


class BundlingError(RuntimeError):
    """Local bundling failed; the message says which step and why."""


@dataclass(frozen=True)
class BundleSource:
    """A folder copied into the bundle: its contents at the root (`target=""`) or under `target/`."""

    path: Path
    target: str = ""


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """`ILocalBundling` that copies `sources` and installs `requirements` for `python_version` on `platforms`, every
    package pinned by `constraints` (the project's constraints.txt)."""

    def __init__(
        self,
        *,
        sources: Sequence[BundleSource],
        requirements: Path | None = None,
        constraints: Path | None = None,
        python_version: str = "3.12",
        platforms: Sequence[str] = ("manylinux2014_x86_64",),
        runtime_provided: Sequence[str] = RUNTIME_PACKAGES,
    ) -> None:
        self.sources = tuple(sources)
        self.runtime_provided = tuple(runtime_provided)
        self.requirements = requirements
        self.constraints = constraints
        self.python_version = python_version
        if not platforms:
            raise ValueError("at least one wheel platform is needed")
        self.platforms = tuple(platforms)

    def try_bundle(self, output_dir: str, options: BundlingOptions | None = None) -> bool:
        """Called by CDK with the asset's output folder and the (Docker) options, which local bundling ignores;
        returns True because it always bundles (or raises)."""
        out = Path(output_dir)
        for source in self.sources:
            copy_tree(source.path, out / source.target)
        if self.requirements is not None and _has_requirements(self.requirements):
            self._pip_install(out)
            remove_packages(out, self.runtime_provided)
        return True

    def pip_command(self, output_dir: Path) -> list[str]:
        """The pip invocation: binary wheels only, so nothing compiles for this machine's platform."""
        if self.requirements is None:
            raise BundlingError("no requirements file to install")
        return [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            *(arg for platform in self.platforms for arg in ("--platform", platform)),
            "--implementation",
            "cp",
            "--only-binary=:all:",
            "--python-version",
            self.python_version,
            "--target",
            str(output_dir),
            "-r",
            str(self.requirements),
            # Every package, dependencies included, at the version the project tests with.
            *(["-c", str(self.constraints)] if self.constraints is not None else []),
        ]

    def _pip_install(self, output_dir: Path) -> None:
        result = subprocess.run(self.pip_command(output_dir), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            platforms = ", ".join(self.platforms)
            raise BundlingError(
                f"pip install -r {self.requirements} for python {self.python_version} on {platforms} failed "
                f"(exit {result.returncode}):\n{result.stderr.strip()[-4000:]}"
            )


@jsii.implements(ILocalBundling)
class WheelhouseLocalBundling:
    """`ILocalBundling` that downloads the wheels a requirements file pins (each one, no dependencies resolved: the
    file lists the whole closure) for `python_version` on manylinux: a wheelhouse a SageMaker job installs offline."""

    def __init__(self, *, requirements: Path, python_version: str, platform: str = "manylinux2014_x86_64") -> None:
        self.requirements, self.python_version, self.platform = requirements, python_version, platform

    def try_bundle(self, output_dir: str, options: BundlingOptions | None = None) -> bool:
        result = subprocess.run(self.pip_command(Path(output_dir)), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BundlingError(
                f"pip download -r {self.requirements} for python {self.python_version} failed "
                f"(exit {result.returncode}):\n{result.stderr.strip()[-4000:]}"
            )
        return True

    def pip_command(self, output_dir: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            self.platform,
            "--implementation",
            "cp",
            "--python-version",
            self.python_version,
            "--dest",
            str(output_dir),
            "-r",
            str(self.requirements),
        ]


def remove_packages(site: Path, names: Sequence[str]) -> None:
    """Delete installed packages (their import folder and dist-info) from a pip `--target` folder."""
    for name in names:
        shutil.rmtree(site / name, ignore_errors=True)
        for info in site.glob(f"{name}-*.dist-info"):
            shutil.rmtree(info)


def copy_tree(source: Path, dest: Path) -> None:
    """Copy the package files of `source` into `dest` (no caches or bytecode)."""
    for path in source_files(source):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _has_requirements(path: Path) -> bool:
    if not path.is_file():
        raise BundlingError(f"requirements file {path} does not exist")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return any(lines)


def local_bundling_options(bundler: PipLocalBundling | WheelhouseLocalBundling) -> BundlingOptions:
    """BundlingOptions that never reach Docker: CDK requires an image, which local bundling leaves unused."""
    from aws_cdk import DockerImage

    # jsii types `ILocalBundling.try_bundle` with the options spread as keywords, but calls it with one positional
    # options object (see test_churn_function_bundle_is_complete_and_fits_lambda), which is what PipLocalBundling takes.
    return BundlingOptions(image=DockerImage.from_registry("unused"), local=bundler)  # type: ignore[arg-type]
