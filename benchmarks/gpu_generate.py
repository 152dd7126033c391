"""Generation speed of the built-in model on a GPU: new tokens/s of `generate` in bfloat16 and in
float32, side by side on the same batch, and their ratio.

    .venv/bin/python benchmarks/gpu_generate.py [--data DIR] [--profile gpu] [--batch-size 32]
        [--max-new-tokens 128] [--repeats 3] [--device cuda] [--json PATH]

The model is a fresh built-in model of `--profile`, built as SFT builds one (`sft.build_model`:
the profile's sizes, a tokenizer trained on the data). It is untrained, so what is measured is the
arithmetic, not what it writes: every sequence decodes exactly `--max-new-tokens` tokens
(`min_new_tokens`), greedily, after the DTR prompts of `--batch-size` QA rows (region features and
depth on). Without `--data`, a smoke dataset is built in a temporary folder. Each dtype gets one
short warm-up call, then the best of `--repeats` synchronised timings. Prints tokens/s of each
dtype, their ratio and the peak GPU memory allocated (`torch.cuda.max_memory_allocated`); `--json`
writes them with the torch, CUDA and device names (scripts/gpu_check.sh reads that file).
`--device cpu` runs the same measurement on the CPU (slow; to try the script without a GPU).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="", help="dataset folder (default: a fresh smoke dataset)")
    parser.add_argument("--profile", default="gpu", choices=("smoke", "default", "gpu"),
                        help="size of the built-in model (its SFT profile)")
    parser.add_argument("--batch-size", type=int, default=32, help="prompts generated together")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="tokens decoded per prompt")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per dtype (the best counts)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = parser.parse_args()
    for name in ("batch_size", "max_new_tokens", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_generate: --device {args.device} but torch {torch.__version__} sees no CUDA GPU", file=sys.stderr)
        return 2

    from workbench import io
    from workbench import model as M
    from workbench.dataset import DataSettings, build_dataset, load_dataset_dir
    from workbench.train import examples, sft

    tmp = tempfile.TemporaryDirectory(prefix="gpu-generate-")
    data_dir = args.data or str(Path(tmp.name) / "data")
    if not args.data:
        build_dataset(DataSettings.from_profile("smoke"), data_dir, progress=False)
    data = load_dataset_dir(data_dir)
    model, processor = sft.build_model(data["train"], sft.SFTSettings.from_profile(args.profile))
    rows = []
    for split in ("val", "test", "test_ood", "train"):  # fill up from the next split when one is small
        rows += examples.qa_rows(data[split], args.batch_size - len(rows)) if split in data else []
        if len(rows) >= args.batch_size:
            break
    rows = list(itertools.islice(itertools.cycle(rows), args.batch_size))  # a tiny dataset repeats its rows
    batch = M.model_inputs(processor, rows, "dtr", **M.prompt_options(model), depth=M.uses_depth(model))
    device = torch.device(args.device)
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
    model.to(device).eval()
    options = dict(do_sample=False, temperature=None, top_p=None, top_k=None,
                   pad_token_id=processor.tokenizer.pad_token_id, eos_token_id=processor.tokenizer.eos_token_id)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def measure(dtype) -> dict:
        model.to(dtype)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        new = args.max_new_tokens
        with torch.no_grad():
            model.generate(**batch, max_new_tokens=4, min_new_tokens=4, **options)  # kernels, caches
            best = float("inf")
            for _ in range(args.repeats):
                sync()
                start = time.perf_counter()
                ids = model.generate(**batch, max_new_tokens=new, min_new_tokens=new, **options)
                sync()
                best = min(best, time.perf_counter() - start)
        assert ids.shape == (len(rows), batch["input_ids"].shape[1] + new), (ids.shape, new)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        return {"tokens_per_s": round(len(rows) * new / best, 1), "seconds": round(best, 4),
                "peak_memory_gib": None if peak is None else round(peak, 3)}

    results = {"float32": measure(torch.float32), "bfloat16": measure(torch.bfloat16)}
    figures = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "model": f"built-in, profile {args.profile}",
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "batch_size": len(rows),
        "prompt_tokens": int(batch["input_ids"].shape[1]),
        "max_new_tokens": args.max_new_tokens,
        **results,
        "ratio_bf16_float32": round(results["bfloat16"]["tokens_per_s"] / results["float32"]["tokens_per_s"], 2),
    }
    print(f"{figures['model']} ({figures['parameters_m']} M parameters) on {figures['device']}, "
          f"{len(rows)} prompts of {figures['prompt_tokens']} tokens, {args.max_new_tokens} new tokens each")
    for name, result in results.items():
        memory = "" if result["peak_memory_gib"] is None else f", peak {result['peak_memory_gib']:.2f} GiB allocated"
        print(f"  {name:<9} {result['tokens_per_s']:>10.1f} tokens/s ({result['seconds']:.3f} s){memory}")
    print(f"  bf16 / float32: {figures['ratio_bf16_float32']:.2f}x")
    if args.json:
        io.write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
