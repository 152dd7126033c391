"""What the 3D positional embedding costs, measured side by side on the same batches.

    python benchmarks/depth_overhead.py [--batches 20] [--batch-size 8] [--threads 1]

For one built-in model (the `default` model profile) and batches of real dataset rows (a small
`smoke`-profile build), it times, with and without depth attached to the images:
- processor: `model_inputs` (chat template, image processor, and with depth the codec and the
  per-patch points);
- train step: the same inputs through forward + backward.
It prints seconds per batch and the ratio with / without depth. CPU seconds are steadier than
wall-clock on a shared machine, so both are printed.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch


def _timed(fn, repeats: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from workbench import model as M
    from workbench.dataset import DataSettings, build_dataset, load_dataset_dir
    from workbench.tasks import prompts

    with tempfile.TemporaryDirectory() as tmp:
        build_dataset(DataSettings.from_profile("smoke", num_scenes=8), f"{tmp}/data", progress=False)
        train = load_dataset_dir(f"{tmp}/data")["train"]
        rows = [dict(train[i]) for i in range(min(len(train), args.batch_size * 4))]
    model, processor = M.build_tiny(prompts.corpus(rows), M.ModelSettings.from_profile("default"))
    batches = [rows[i: i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
    batches = [b for b in batches if len(b) == args.batch_size]
    print(f"{len(batches)} distinct batches of {args.batch_size} rows, {args.batches} timed each way, "
          f"{args.threads} thread(s)")

    results = {}
    for depth in (False, True):
        counter = iter(range(10**9))

        def encode(depth=depth, counter=counter):
            return M.model_inputs(processor, batches[next(counter) % len(batches)], "dtr", True, depth=depth)

        results[("processor", depth)] = _timed(encode, args.batches)
        inputs = [encode() for _ in batches]

        def step(inputs=inputs, counter=counter):
            batch = inputs[next(counter) % len(inputs)]
            model.zero_grad()
            model(**batch, labels=batch["input_ids"]).loss.backward()

        step()  # warm-up
        results[("train step", depth)] = _timed(step, args.batches)
    for what in ("processor", "train step"):
        (w0, c0), (w1, c1) = results[(what, False)], results[(what, True)]
        print(f"{what:>10}: without depth {w0 * 1e3:7.1f} ms ({c0 * 1e3:7.1f} ms CPU), with depth {w1 * 1e3:7.1f} ms "
              f"({c1 * 1e3:7.1f} ms CPU): ratio {w1 / w0:.2f} wall, {c1 / c0:.2f} CPU")


if __name__ == "__main__":
    main()
