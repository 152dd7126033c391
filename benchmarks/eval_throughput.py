"""Evaluation throughput: examples/s of batched greedy generation vs one example at a time.

    .venv/bin/python benchmarks/eval_throughput.py [--model DIR] [--data DIR] [--examples 32]
        [--batch-size 32] [--max-new-tokens 64] [--path dtr] [--threads 0]

Both runs go through `workbench.eval.evaluate.completions` (what `workbench eval` uses) on the same
model and the same rows; only `batch_size` differs. Without `--model`, an untrained built-in
smoke model is built (it never emits end-of-sequence, so both runs decode exactly
`max_new_tokens` tokens per example: the comparison is pure batching). Without `--data`, a
smoke dataset is built into a temporary folder. Prints examples/s of each run, their ratio (the
figure; goal >= 5x on 2 CPU cores) and the share of completions that are identical in both runs
(left padding should not change greedy outputs much).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="", help="model folder (default: an untrained built-in smoke model)"
    )
    parser.add_argument("--data", default="", help="dataset folder (default: a fresh smoke dataset)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--examples", type=int, default=32, help="QA rows to generate for")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--path", default="dtr", choices=("lor", "dtr", "auto"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()

    import torch

    from workbench import model as M
    from workbench.dataset import build as data
    from workbench.dataset import views
    from workbench.eval import evaluate as E
    from workbench.tasks import prompts
    tmp = tempfile.TemporaryDirectory(prefix="eval-bench-")
    data_dir = args.data or str(Path(tmp.name) / "data")
    if not args.data:
        data.build_dataset(data.DataSettings.from_profile("smoke"), data_dir, progress=False)
    dd = data.load_dataset_dir(data_dir)
    if args.model:
        model, processor = M.load(args.model)
        name = args.model
    else:
        train = views.remove_columns(dd["train"], ["image", "depth"])
        model, processor = M.build_tiny(prompts.corpus(train), M.ModelSettings.from_profile("smoke"))
        name = "untrained built-in smoke model"
    rows = []
    for split in (args.split, *[s for s in ("val", "test", "test_ood", "train") if s != args.split]):
        rows += E.load_rows(dd, split)  # fill up from other splits when one is small
        if len(rows) >= args.examples:
            break
    rows = rows[: args.examples]

    def run(batch_size: int) -> tuple[float, dict]:
        settings = E.EvalSettings(
            batch_size=batch_size, max_new_tokens=args.max_new_tokens, num_threads=args.threads
        )
        t0 = time.perf_counter()
        texts = E.completions(
            model, processor, rows, [args.path], settings, E.ImageReader(dd), progress=False
        )
        return time.perf_counter() - t0, texts

    run(min(args.batch_size, len(rows)))  # warm-up: lazy initialisation, allocator
    batched_s, batched = run(args.batch_size)
    single_s, single = run(1)
    same = sum(batched[k] == single[k] for k in batched) / len(batched)
    print(
        f"model: {name}; {len(rows)} examples, path {args.path}, max_new_tokens {args.max_new_tokens}, "
        f"torch threads {args.threads or torch.get_num_threads()}"
    )
    print(f"batched (batch {args.batch_size}): {batched_s:7.2f} s  {len(rows) / batched_s:7.2f} examples/s")
    print(f"one by one:            {single_s:7.2f} s  {len(rows) / single_s:7.2f} examples/s")
    print(f"ratio batched / one-by-one: {single_s / batched_s:.1f}x   identical completions: {same:.0%}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
