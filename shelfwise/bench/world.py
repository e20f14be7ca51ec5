"""`shelfwise bench world`: how fast the generator writes worlds, and how much memory it needs.

Each scale runs in a fresh child process, so its peak memory (max RSS) is its own. The baseline, measured in the
same child, is the write floor: re-encoding the world's Parquet files with the same writer options, i.e. what the
files cost to write with no simulation at all.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

_CHILD = (
    "import sys; from shelfwise.bench.world import run_child; run_child(sys.argv[1], int(sys.argv[2]), sys.argv[3])"
)


@dataclass(frozen=True)
class WorldBench:
    scale: str
    order_lines: int
    total_rows: int
    seconds: float
    peak_mb: float
    write_floor_seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds

    @property
    def floor_ratio(self) -> float:
        return self.seconds / self.write_floor_seconds


def write_floor(world: Path) -> float:
    """Seconds to read and re-write every Parquet file of the world with the generator's writer options."""
    import pyarrow.parquet as pq

    from shelfwise.world.writer import write_parquet

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=world.parent) as scratch:
        for i, path in enumerate(sorted(world.rglob("*.parquet"))):
            write_parquet(pq.read_table(path), Path(scratch) / f"{i}.parquet")
    return time.perf_counter() - started


def run_child(scale: str, seed: int, out: str) -> None:
    """Generate one world and print JSON lines: progress, then the result (run in a fresh process)."""
    from shelfwise.world import generate_world

    def progress(stage: str, done: float) -> None:
        print(json.dumps({"stage": stage, "done": done}), flush=True)

    summary = generate_world(scale, seed, Path(out), progress=progress)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = WorldBench(scale, summary.rows["order_lines"], sum(summary.rows.values()), summary.seconds, peak_mb,
                        write_floor(Path(out)))  # fmt: skip
    print(json.dumps({"result": asdict(result)}), flush=True)


def _measure(scale: str, seed: int, scratch: Path, on_progress: Callable[[str, float], None]) -> WorldBench:
    out = scratch / f"{scale}-{seed}"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, scale, str(seed), str(out)], stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    result: WorldBench | None = None
    assert child.stdout is not None
    for line in child.stdout:
        message = json.loads(line)
        if "result" in message:
            result = WorldBench(**message["result"])
        else:
            on_progress(message["stage"], message["done"])
    if child.wait() != 0 or result is None:
        raise RuntimeError(f"world generation for scale {scale!r} failed (exit code {child.returncode})")
    return result


def command(
    scales: Annotated[str, typer.Option("--scales", help="Comma-separated scales to run.")] = "default,large",
    seed: Annotated[int, typer.Option("--seed")] = 42,
) -> None:
    """Rows per second and peak memory of `world generate` per scale, against the Parquet write floor."""
    from shelfwise.config import settings
    from shelfwise.world import SCALES

    console = Console()
    wanted = [s.strip() for s in scales.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCALES]
    if unknown or not wanted:
        raise typer.BadParameter(
            f"unknown scale(s) {unknown}; valid scales: {', '.join(SCALES)}", param_hint="--scales"
        )
    work = settings().work_dir / "bench"
    work.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(dir=work) as scratch, Progress(
        TextColumn("{task.description:<44}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
        console=console,
    ) as bar:  # fmt: skip
        for scale in wanted:
            task = bar.add_task(scale, total=1.0)

            def show(stage: str, done: float, task: TaskID = task, scale: str = scale) -> None:
                bar.update(task, description=f"{scale}: {stage}", completed=done)

            results.append(_measure(scale, seed, Path(scratch), show))
    console.print(_table(results))
    console.print("world: " + "; ".join(_figures(r) for r in results))


def _table(results: list[WorldBench]) -> Table:
    table = Table(title="world generate (one fresh process per scale)")
    for name in ("scale", "order lines", "total rows", "seconds", "rows/s", "peak MB", "write floor s", "x floor"):
        table.add_column(name, justify="left" if name == "scale" else "right")
    for r in results:
        table.add_row(r.scale, f"{r.order_lines:,}", f"{r.total_rows:,}", f"{r.seconds:.1f}",
                      f"{r.rows_per_second:,.0f}", f"{r.peak_mb:,.0f}", f"{r.write_floor_seconds:.1f}",
                      f"{r.floor_ratio:.1f}")  # fmt: skip
    return table


def _figures(r: WorldBench) -> str:
    return (
        f"{r.scale} {r.order_lines / 1e6:.1f}M order lines, {r.rows_per_second / 1e6:.2f}M rows/s, "
        f"{r.seconds:.0f} s, peak {r.peak_mb:,.0f} MB, {r.floor_ratio:.1f}x the write floor"
    )
