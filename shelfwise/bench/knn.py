"""`shelfwise bench knn`: recall@10 and queries per second of the embedded vector index against exact search and
against a bare faiss call, on the catalogue and on a catalogue of a million vectors.

Two data sets: (a) the catalogue's size (500 vectors; the trained embeddings from `--embeddings FILE.npy` when given,
otherwise random unit vectors of 128 dimensions, which the output says) and (b) `--vectors` (1,000,000 by default)
unit vectors of 128 dimensions drawn from a Gaussian mixture (clustered, as embeddings are; uniform random data is far
harder for any graph index and says little about embeddings). One HNSW graph per data set (m, ef_construction as the
index's defaults), built with two faiss threads and timed; queries are fresh draws from the same distribution.

For every ef_search of the sweep: recall@10 against exact inner-product search (`IndexFlatIP`) and single-query QPS
on one thread, of `FaissIndex.search` (id map, Hit building, the API's path) and of the bare `graph.search` with the
same parameters, in the same run, interleaved, best of 2 to 7 repetitions. The smallest ef_search reaching
recall@10 >= 0.98 on the large set is what `HnswParams` defaults to (`shelfwise.visual.index.DEFAULT_EF_SEARCH`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.table import Table

from shelfwise.visual.index import Filters, HnswParams, make_catalogue, memory_bytes

if TYPE_CHECKING:
    from shelfwise.visual.faiss_index import FaissIndex

CATALOGUE_SIZE = 500
DIMENSION = 128
K = 10
TARGET_RECALL = 0.98
TARGET_SPEED = 0.5
EF_SWEEP = (16, 32, 64, 128, 256)
#: The synthetic attributes give row i the category i mod CATEGORIES: the filtered searches keep 1 row in 20.
CATEGORIES = 20
FILTER = Filters(category="category-0")


@dataclass(frozen=True)
class DataSet:
    label: str
    vectors: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]


@dataclass(frozen=True)
class SweepRow:
    ef_search: int
    recall: float
    bare_recall: float
    qps: float
    bare_qps: float

    @property
    def speed(self) -> float:
        return self.qps / self.bare_qps


@dataclass(frozen=True)
class Result:
    data: DataSet
    build_s: float
    rows: list[SweepRow]
    graph_bytes: int
    #: At the chosen ef_search, with `FILTER`.
    filtered: SweepRow | None = None

    def chosen(self) -> SweepRow | None:
        """The smallest ef_search reaching the recall target."""
        return next((row for row in self.rows if row.recall >= TARGET_RECALL), None)


def unit(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def mixture(
    n: int, dimension: int, rng: np.random.Generator, centres: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """n unit vectors around random centres (noise half a centre's length), made in chunks to bound memory."""
    out = np.empty((n, dimension), dtype=np.float32)
    for start in range(0, n, 100_000):
        end = min(n, start + 100_000)
        noise = rng.standard_normal((end - start, dimension), dtype=np.float32)
        out[start:end] = centres[rng.integers(0, len(centres), end - start)] + 0.5 * noise
    return unit(out)


def clustered_set(n: int, queries: int, seed: int) -> DataSet:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(16, n // 1000), DIMENSION), dtype=np.float32)
    return DataSet(
        f"{n:,} x {DIMENSION} clustered (synthetic Gaussian mixture)",
        mixture(n, DIMENSION, rng, centres),
        mixture(queries, DIMENSION, rng, centres),
    )


def catalogue_set(embeddings: Path | None, queries: int, seed: int) -> DataSet:
    rng = np.random.default_rng(seed)
    if embeddings is not None:
        vectors = unit(np.load(embeddings).astype(np.float32))
        picked = vectors[rng.integers(0, len(vectors), queries)]
        noise = 0.1 * rng.standard_normal(picked.shape, dtype=np.float32) / np.sqrt(vectors.shape[1])
        return DataSet(
            f"{len(vectors):,} x {vectors.shape[1]} trained embeddings ({embeddings.name})",
            vectors,
            unit(picked + noise),
        )
    return DataSet(
        f"{CATALOGUE_SIZE} x {DIMENSION} random unit vectors (no trained embedding given)",
        unit(rng.standard_normal((CATALOGUE_SIZE, DIMENSION), dtype=np.float32)),
        unit(rng.standard_normal((queries, DIMENSION), dtype=np.float32)),
    )


def build(data: DataSet, params: HnswParams) -> tuple[FaissIndex, float]:
    """The index over `data` (synthetic attributes) and the seconds the graph took to build."""
    import faiss

    from shelfwise.visual.faiss_index import FaissIndex

    n = len(data.vectors)
    categories = np.array([f"category-{i}" for i in range(CATEGORIES)], dtype=object)[np.arange(n) % CATEGORIES]
    columns = {
        "sku": np.array([f"V{i:08d}" for i in range(n)], dtype=object),
        "category": categories,
        "department": categories,
        "price": np.full(n, 10.0),
        "in_stock": np.ones(n, dtype=bool),
        "image_key": np.full(n, "", dtype=object),
        "brand": np.full(n, "", dtype=object),
        "colour": np.full(n, "", dtype=object),
        "pattern": np.full(n, "", dtype=object),
    }
    catalogue = make_catalogue(data.vectors, columns)
    faiss.omp_set_num_threads(2)
    started = time.perf_counter()
    index = FaissIndex.build(catalogue, params)
    return index, time.perf_counter() - started


def exact_neighbours(data: DataSet) -> npt.NDArray[np.int64]:
    import faiss

    flat = faiss.IndexFlatIP(data.vectors.shape[1])
    flat.add(data.vectors)
    _, rows = flat.search(data.queries, K)
    return rows


def recall(found: list[list[int]], truth: npt.NDArray[np.int64]) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))


def filtered_truth(data: DataSet) -> npt.NDArray[np.int64]:
    """The exact top K among the rows passing `FILTER` (every `CATEGORIES`th row)."""
    rows = np.arange(0, len(data.vectors), CATEGORIES)
    products = data.queries @ data.vectors[rows].T
    top = np.argsort(-products, axis=1)[:, :K]
    found: npt.NDArray[np.int64] = rows[top]
    return found


def sweep_row(
    index: FaissIndex, data: DataSet, truth: npt.NDArray[np.int64], ef_search: int, filtered: bool = False
) -> SweepRow:
    """Recall and single-thread QPS of the index class and of the bare graph call at one ef_search; `filtered`: with
    `FILTER` (the bare call given the selector ready-made, the index class building it per query as it serves)."""
    import faiss

    faiss.omp_set_num_threads(1)
    tuned = index.tuned(ef_search)
    graph = index.graph
    bitmap = np.packbits(np.arange(len(data.vectors)) % CATEGORIES == 0, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(data.vectors), faiss.swig_ptr(bitmap))
    params = faiss.SearchParametersHNSW(efSearch=ef_search)  # type: ignore[attr-defined]
    if filtered:
        params.sel = selector
    filters = FILTER if filtered else Filters()
    queries = data.queries

    def ours() -> list[list[int]]:
        return [[int(hit.sku[1:]) for hit in tuned.search(q, K, filters)] for q in queries]

    def bare() -> list[list[int]]:
        return [graph.search(queries[i : i + 1], K, params=params)[1][0].tolist() for i in range(len(queries))]

    timings: dict[str, list[float]] = {"ours": [], "bare": []}
    found: dict[str, list[list[int]]] = {}
    # Interleaved and repeated (best of at least 2, up to 1 s each): the machine is shared and noisy.
    while len(timings["ours"]) < 2 or (len(timings["ours"]) < 7 and sum(timings["ours"]) < 1.0):
        for name, search in (("bare", bare), ("ours", ours)):
            started = time.perf_counter()
            found[name] = search()
            timings[name].append(time.perf_counter() - started)
    n = len(queries)
    return SweepRow(
        ef_search,
        recall(found["ours"], truth),
        recall(found["bare"], truth),
        n / min(timings["ours"]),
        n / min(timings["bare"]),
    )


def run(data: DataSet, params: HnswParams, sweep: tuple[int, ...], console: Console) -> Result:
    with console.status(f"{data.label}: building the HNSW graph"):
        index, build_s = build(data, params)
    with console.status(f"{data.label}: exact search"):
        truth = exact_neighbours(data)
    rows = []
    for ef in sweep:
        with console.status(f"{data.label}: ef_search {ef}"):
            rows.append(sweep_row(index, data, truth, ef))
    with console.status(f"{data.label}: filtered searches"):
        chosen = next((row.ef_search for row in rows if row.recall >= TARGET_RECALL), params.ef_search)
        filtered = sweep_row(index, data, filtered_truth(data), chosen, filtered=True)
    graph: Any = index.graph  # faiss's stubs lack HNSW.neighbors
    # faiss stores each link as a 32-bit id, and the vectors as float32.
    graph_bytes = graph.hnsw.neighbors.size() * 4 + graph.ntotal * graph.d * 4
    return Result(data, build_s, rows, int(graph_bytes), filtered)


def sweep_table(result: Result) -> Table:
    chosen = result.chosen()
    table = Table(title=f"{result.data.label}: recall@{K} against exact search, single-query QPS on one thread")
    for column in ("ef_search", f"recall@{K}", f"bare recall@{K}", "QPS (FaissIndex)", "QPS (bare faiss)", "ratio"):
        table.add_column(column, justify="right")
    for row in result.rows:
        style = "bold" if row is chosen else None
        table.add_row(
            str(row.ef_search),
            f"{row.recall:.4f}",
            f"{row.bare_recall:.4f}",
            f"{row.qps:,.0f}",
            f"{row.bare_qps:,.0f}",
            f"{row.speed:.2f}x",
            style=style,
        )
    if result.filtered is not None:
        row = result.filtered
        table.add_row(
            f"{row.ef_search}, {100 // CATEGORIES}% pass filter",
            f"{row.recall:.4f}",
            f"{row.bare_recall:.4f}",
            f"{row.qps:,.0f}",
            f"{row.bare_qps:,.0f}",
            f"{row.speed:.2f}x",
        )
    return table


def memory_table(params: HnswParams, sizes: dict[str, int], measured: dict[str, int]) -> Table:
    table = Table(title=f"k-NN memory, 1.1 x (4 x {DIMENSION} + 8 x {params.m}) bytes a vector (one copy)")
    for column in ("vectors", "k-NN plugin estimate", "with 1 replica", "faiss graph measured here"):
        table.add_column(column, justify="right")
    for label, n in sizes.items():
        estimate = memory_bytes(n, DIMENSION, params.m)
        table.add_row(
            f"{n:,} ({label})",
            f"{estimate / 2**20:,.1f} MiB",
            f"{2 * estimate / 2**20:,.1f} MiB",
            f"{measured[label] / 2**20:,.1f} MiB" if label in measured else "",
        )
    return table


def key_line(results: list[Result], params: HnswParams) -> str:
    parts = []
    for result in results:
        chosen = result.chosen()
        found = (
            f"ef_search {chosen.ef_search}: recall@{K} {chosen.recall:.3f} at {chosen.qps:,.0f} q/s = "
            f"{chosen.speed:.2f}x bare faiss ({chosen.bare_qps:,.0f} q/s)"
            if chosen
            else f"no ef_search in the sweep reached recall@{K} {TARGET_RECALL}"
        )
        if result.filtered is not None:
            found += f", {100 // CATEGORIES}%-pass filter recall@{K} {result.filtered.recall:.3f}"
        parts.append(f"{result.data.label}: build {result.build_s:.1f} s (2 threads); {found}")
    large = results[-1].chosen()
    verdict = (
        f"target (recall >= {TARGET_RECALL} at >= {TARGET_SPEED:.0%} of bare QPS) "
        + ("met" if large and large.speed >= TARGET_SPEED else "NOT met")
        + f"; HnswParams default ef_search {params.ef_search}"
        + ("" if large is None or large.ef_search == params.ef_search else f" (this run suggests {large.ef_search})")
    )
    return "knn: " + " | ".join(parts) + " | " + verdict


def command(
    vectors: Annotated[int, typer.Option(min=1000, help="Vectors of the large catalogue (clustered, 128-d).")] = (
        1_000_000
    ),
    queries: Annotated[int, typer.Option(min=10, help="Queries per data set.")] = 1000,
    embeddings: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="The catalogue's trained embeddings (.npy).")
    ] = None,
    ef_search: Annotated[str, typer.Option(help="The ef_search values to sweep, comma-separated.")] = ",".join(
        map(str, EF_SWEEP)
    ),
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Recall@10 and QPS of the embedded HNSW index against exact search and a bare faiss call."""
    console = Console()
    try:
        sweep = tuple(sorted({int(value) for value in ef_search.split(",")}))
    except ValueError as error:
        raise typer.BadParameter(f"expected integers separated by commas, got {ef_search!r}") from error
    params = HnswParams()
    console.print(f"HNSW m {params.m}, ef_construction {params.ef_construction}, inner product on unit vectors")
    results = []
    for data in (catalogue_set(embeddings, queries, seed), clustered_set(vectors, queries, seed)):
        result = run(data, params, sweep, console)
        console.print(sweep_table(result))
        results.append(result)
    sizes = {"catalogue": len(results[0].data.vectors), "large": vectors, "10M": 10_000_000}
    measured = {"catalogue": results[0].graph_bytes, "large": results[1].graph_bytes}
    console.print(memory_table(params, sizes, measured))
    console.print(key_line(results, params), soft_wrap=True)
