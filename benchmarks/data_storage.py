"""Bytes on disk of a dataset build, and a killed build resumed to the same bytes.

    python benchmarks/data_storage.py --profile gpu --scenes 2000 [--workers 2] [--out DIR]

Side by side for the same settings:
- the build as stored (each view once, `views/`; rows that name their view), its bytes per row
  and per view from the data card, and what one row per copy of its view would take (the
  format before views were stored once: every row with its own marked PNG and float32 depth,
  measured by encoding a sample of the rows that way);
- the full profile's size, scaled from the measured build by its scene count;
- a build killed (SIGKILL) once half of its scenes are in finished chunks, then run again: the
  seconds each part took and whether the resumed folder is byte-identical to the uninterrupted
  one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _build_cmd(args, out: Path) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", "data", "--out", str(out), "--profile", args.profile,
            "--num-scenes", str(args.scenes), "--workers", str(args.workers), "--no-progress"]


def _per_copy_bytes(out: Path, sample: int) -> float:
    """Mean bytes a row would take carrying its own marked PNG and float32 depth (format 1)."""
    import numpy as np

    from workbench.dataset import load_dataset_dir
    from workbench.world import render

    ds = load_dataset_dir(out)["train"]
    step = max(1, len(ds) // sample)
    sizes = [len(render.png_bytes(r["image"])) + np.asarray(r["depth"], np.float32).nbytes
             for r in ds.select(range(0, len(ds), step))]
    return float(np.mean(sizes))


def main(argv=None) -> None:
    from workbench.dataset import DataSettings
    from workbench.dataset import build as data

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="gpu")
    p.add_argument("--scenes", type=int, default=2000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--sample", type=int, default=300, help="rows encoded the old way for the comparison")
    p.add_argument("--out", default=None, help="working folder (default: a temporary one, removed)")
    args = p.parse_args(argv)
    root = Path(args.out or tempfile.mkdtemp(prefix="data_storage-"))
    root.mkdir(parents=True, exist_ok=True)
    full = DataSettings.from_profile(args.profile)
    try:
        through, resumed = root / "through", root / "resumed"
        for d in (through, resumed, data.staging_dir(resumed)):
            shutil.rmtree(d, ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run(_build_cmd(args, through), check=True)
        t_through = time.perf_counter() - t0

        card = data.read_data_card(through)
        storage = card["storage"]
        rows = sum(s["rows"] for s in card["splits"].values())
        stored = _size(through)
        per_copy = _per_copy_bytes(through, args.sample)
        print(f"{args.scenes} scenes of the {args.profile} profile ({card['settings']['image_size']} px), "
              f"{rows} rows, built in {t_through:.0f} s with {args.workers} worker(s)")
        print(f"  stored: {stored / 1e6:.1f} MB ({storage['bytes_per_row']} B a row, "
              f"{storage['bytes_per_view']} B a view)")
        print(f"  one row per copy of its view: {per_copy * rows / 1e6:.1f} MB "
              f"({per_copy:.0f} B a row for image and depth alone)")
        print(f"  ratio stored / per copy: {stored / (per_copy * rows):.3f}")
        scale = full.num_scenes / args.scenes
        print(f"  the full {args.profile} profile ({full.num_scenes} scenes), scaled: {stored * scale / 1e9:.2f} GB "
              f"(per copy: {per_copy * rows * scale / 1e9:.1f} GB)")

        stage = data.staging_dir(resumed)
        chunk_dirs = len(data.chunks(DataSettings.from_profile(args.profile, num_scenes=args.scenes)))
        t0 = time.perf_counter()
        proc = subprocess.Popen(_build_cmd(args, resumed), start_new_session=True)
        while proc.poll() is None:
            done = [d for d in stage.glob("*-*-*") if d.is_dir() and ".tmp-" not in d.name] if stage.is_dir() else []
            if len(done) >= chunk_dirs // 2:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        proc.wait()
        t_killed = time.perf_counter() - t0
        killed_with = len([d for d in stage.glob("*-*-*") if d.is_dir() and ".tmp-" not in d.name])
        t0 = time.perf_counter()
        subprocess.run(_build_cmd(args, resumed), check=True)
        t_resume = time.perf_counter() - t0
        same = _digest(through) == _digest(resumed)
        print(f"  killed after {t_killed:.0f} s with {killed_with} of {chunk_dirs} chunks finished; resumed in "
              f"{t_resume:.0f} s; byte-identical to the uninterrupted build: {same}")
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
