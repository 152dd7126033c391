"""Throughput of the data engine, next to raw open3d ray casting on the same scenes.

    python benchmarks/data_throughput.py [--scenes 200] [--image-size 112] [--workers 0]

For the same scenes (same seeds) it measures, side by side in one run:
- raw: building the open3d RaycastingScene and casting one primary ray per pixel (the floor
  of any ray-cast renderer);
- engine: `data.scene_records`, everything the build stores for a scene (scene sampling,
  shading, shadow rays, occlusion, questions, both traces, the view's image and depth PNGs),
  train split (questions + blend rows);
with 1 process and with all workers. The figure is the ratio engine / raw. CPU seconds per
scene are printed too: on a shared machine they are steadier than wall-clock rates.
The issue's goal: >= 50 scenes/s per process at 112 px.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np


def _raw(job) -> int:
    """Build the ray-casting scene and cast the primary rays of scene `index` (no shading)."""
    import open3d as o3d

    from workbench.world import render, scenes
    settings, index = job
    rng = np.random.default_rng(np.random.SeedSequence([settings.seed, index]).spawn(3)[0])
    scene = scenes.sample_scene(
        rng,
        "in",
        settings.image_size,
        settings.min_objects,
        settings.max_objects,
        settings.stack_probability,
        settings.walls_probability,
    )
    t0 = time.perf_counter()
    rc = render.build_raycasting_scene(scene)
    rays, _ = render._rays(scene)
    rc.cast_rays(o3d.core.Tensor(rays))
    return time.perf_counter() - t0


def _engine(job) -> int:
    from workbench.dataset import build as data
    settings, index = job
    return len(data.scene_records(settings, "train", index)[1])


def _time(fn, jobs, workers: int):
    """(wall seconds, cpu seconds of this process, results)."""
    if workers == 1:
        fn(jobs[0])  # warm caches and imports
        t0, c0 = time.perf_counter(), time.process_time()
        out = [fn(j) for j in jobs]
        return time.perf_counter() - t0, time.process_time() - c0, out
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(fn, jobs[:workers], chunksize=1)  # start and warm every worker
        t0 = time.perf_counter()
        out = pool.map(fn, jobs, chunksize=4)
        return time.perf_counter() - t0, float("nan"), out


def main(argv=None) -> None:
    from workbench.dataset import build as data
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=200)
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--workers", type=int, default=0, help="parallel run's processes; 0 = all cores")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    settings = data.DataSettings.from_profile("smoke", image_size=args.image_size, seed=args.seed)
    jobs = [(settings, i) for i in range(args.scenes)]
    all_workers = args.workers or os.cpu_count() or 1
    print(
        f"{args.scenes} scenes at {args.image_size} px, {settings.questions_per_scene} questions + "
        f"{settings.blend_per_scene} blend rows per scene, {os.cpu_count()} cores"
    )
    print(
        f"{'workers':>8} {'raw cast scenes/s':>18} {'engine scenes/s':>16} {'rows/s':>9} {'engine/raw':>11} "
        f"{'engine cpu ms/scene':>20}"
    )
    for workers in sorted({1, all_workers}):
        raw_wall, _, raw_each = _time(_raw, jobs, workers)
        eng_wall, eng_cpu, rows = _time(_engine, jobs, workers)
        # raw: time inside the cast only (scene sampling excluded), summed over processes
        raw_rate = args.scenes / (sum(raw_each) / workers)
        eng_rate = args.scenes / eng_wall
        cpu = f"{1000 * eng_cpu / args.scenes:.1f}" if workers == 1 else "-"
        print(
            f"{workers:>8} {raw_rate:>18.1f} {eng_rate:>16.1f} {sum(rows) / eng_wall:>9.1f} "
            f"{eng_rate / raw_rate:>11.3f} {cpu:>20}"
        )
        if workers > 1:
            print(f"{'':>8} per process: {eng_rate / workers:.1f} engine scenes/s")


if __name__ == "__main__":
    main()
