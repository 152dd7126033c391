"""Public spatial benchmarks read into the workbench's row contract (issue #25): SPAR-Bench,
CV-Bench, SAT, EmbSpatial-Bench and SpatialRGPT-Bench, one module each, every module saying which
card and which official script its field names follow.

    from workbench.dataset import benchmarks
    items = benchmarks.load("cvbench", "path/to/CV-Bench", limit=100)   # benchmark items
    rows = [benchmarks.model_row(item, image_size=112) for item in items]

`load` reads a local copy (a `save_to_disk` folder, parquet / json files, or the file itself) or,
with the network, the hub dataset; `limit` takes a round-robin over the benchmark's categories, so
a small sample covers every task. `workbench bench` (`workbench.eval.bench`) asks a model these
rows and scores them by each benchmark's official rule (`workbench.eval.official`).
`write_fixture` writes a small copy of a benchmark in its own schema (tests, notebook 05).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workbench.dataset.benchmarks import common, cvbench, embspatial, sat, spar, spatialrgpt
from workbench.dataset.benchmarks.common import INDEX, BenchmarkError, model_row
from workbench.dataset.benchmarks.fixtures import write_fixture

MODULES = {m.NAME: m for m in (spar, cvbench, sat, embspatial, spatialrgpt)}
NAMES = tuple(MODULES)
VARIANTS = ("plain", "regions")

__all__ = ["NAMES", "VARIANTS", "BenchmarkError", "load", "model_row", "write_fixture"]


def load(
    name: str,
    source: str | os.PathLike | None = None,
    limit: int = 0,
    variant: str = "plain",
    regions_file: str | os.PathLike | None = None,
    image_root: str | os.PathLike | None = None,
    circular: bool = False,
    seed: int = 42,
) -> list[dict[str, Any]]:
    """The items of benchmark `name` (`common` describes an item) from `source` (None: the hub).

    limit: items to take (0 = all), a round-robin over categories in the benchmark's order.
    variant: `regions` gives EmbSpatial's objects as regions (DTR), SPAR the boxes of `regions_file`.
    image_root: SpatialRGPT-Bench's image folder (default: the folder of `source`).
    circular, seed: SAT's options, reversed as a second item, and the seed of their shuffle."""
    if name not in MODULES:
        raise BenchmarkError(f"unknown benchmark {name!r}; choose from {NAMES}")
    if variant not in VARIANTS:
        raise BenchmarkError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    if not isinstance(limit, int) or limit < 0:
        raise BenchmarkError(f"limit must be an integer >= 0, got {limit!r}")
    if regions_file and name != "spar":
        raise BenchmarkError(f"a region prompt file is for SPAR-Bench only, not {name!r}")
    if variant == "regions" and name == "spar" and not regions_file:
        raise BenchmarkError("SPAR-Bench's region version needs its region prompt file (regions_file)")
    module = MODULES[name]
    records = common.read_records(source, module.HUB, module.SPLIT, name)
    for k, rec in enumerate(records):
        rec[INDEX] = k
    if name == "sat":
        common.check_columns(records, sat.REQUIRED, name)
        sat.paper_orders(records, seed)
    records = _sample(records, module, limit)
    if name == "spar":
        gen = spar.items(records, regions=regions_file)
    elif name == "embspatial":
        gen = embspatial.items(records, regions=variant == "regions")
    elif name == "sat":
        gen = sat.items(records, seed=seed, circular=circular)
    elif name == "spatialrgpt":
        root = image_root
        if root is None and source is not None:
            path = Path(source)
            root = path.parent if path.is_file() else path
        gen = spatialrgpt.items(records, image_root=root)
    else:
        gen = module.items(records)
    return list(gen)


def _sample(records: list[dict[str, Any]], module: Any, limit: int) -> list[dict[str, Any]]:
    if not limit or limit >= len(records):
        return records
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for k, rec in enumerate(records):
        try:
            by_cat.setdefault(module.category_of(rec), []).append(rec)
        except (KeyError, TypeError, AttributeError) as err:
            raise common.BenchmarkError(f"{module.NAME}: record {k} has no category ({err})") from None
    queues = list(by_cat.values())
    picked: list[dict[str, Any]] = []
    while len(picked) < limit:
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop(0))
    return sorted(picked, key=lambda r: r[INDEX])
