"""GRPO's rollouts: Hugging Face's `generate` against the built-in model's decode loop, side by side.

    python benchmarks/grpo_generate.py --model RUN/sft --data RUN/data [--rounds 6] [--threads 2]

Generates completions of the `default` GRPO shape (`per_device_train_batch_size` completions a
call, `num_generations` of each prompt, the profile's temperature, top-p and completion budget,
the suppressed tokens GRPO sets) for val prompts of both paths, alternating the two loops round by
round (`workbench.model.decoding.ENABLED` switches them) so that both see the same machine load,
and prints completion tokens per second of each and their ratio. Then checks, on the same
prompts, that greedy decoding gives identical tokens. A trained model, so that completions have
their real lengths.
"""

from __future__ import annotations

import argparse
import copy
import time


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="an SFT or GRPO folder of the built-in model")
    p.add_argument("--data", required=True, help="a dataset folder")
    p.add_argument("--rounds", type=int, default=6, help="timed calls of each loop (after one warm-up each)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args(argv)

    import torch

    from workbench import model as M
    from workbench.dataset import load_dataset_dir
    from workbench.model import decoding
    from workbench.train import examples as E
    from workbench.train.grpo import suppressed_tokens
    from workbench.train.grpo_settings import GRPOSettings

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = GRPOSettings.from_profile("default")
    model, processor = M.load(args.model)
    model.eval()
    prompts = settings.per_device_train_batch_size // settings.num_generations
    rows = E.qa_rows(load_dataset_dir(args.data)["val"], prompts * (args.rounds + 1) * 2, seed=0)
    config = copy.deepcopy(model.generation_config)
    config.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p,
                  max_new_tokens=settings.max_completion_length, suppress_tokens=suppressed_tokens(processor))

    def batch(k: int):
        chosen = rows[k * prompts:(k + 1) * prompts]
        path = "dtr" if k % 2 else "lor"
        options = M.prompt_options(model)
        return M.model_inputs(processor, [r for r in chosen for _ in range(settings.num_generations)], path,
                              options["region_coords"], system=options["system"],
                              option_style=options["option_style"], depth=M.uses_depth(model))

    def run(k: int, fast: bool) -> tuple[int, float]:
        decoding.ENABLED = fast
        inputs = batch(k)
        torch.manual_seed(k)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**inputs, generation_config=config)
        seconds = time.perf_counter() - t0
        new = out[:, inputs["input_ids"].shape[1]:]
        tokens = int((new != config.pad_token_id).sum())
        return tokens, seconds

    totals = {True: [0, 0.0], False: [0, 0.0]}
    run(0, True), run(0, False)  # warm-up
    for k in range(1, args.rounds + 1):
        for fast in (k % 2 == 0, k % 2 == 1):  # alternate which loop goes first
            tokens, seconds = run(k, fast)
            totals[fast][0] += tokens
            totals[fast][1] += seconds
    decoding.ENABLED = True
    hf, ours = (totals[False][0] / totals[False][1]), (totals[True][0] / totals[True][1])
    print(f"{args.rounds} calls of {settings.per_device_train_batch_size} completions ({prompts} prompts x "
          f"{settings.num_generations}), temperature {settings.temperature}, top-p {settings.top_p}, "
          f"{torch.get_num_threads()} threads")
    print(f"  Hugging Face generate: {hf:7.0f} completion tokens/s ({totals[False][0]} tokens in {totals[False][1]:.1f} s)")
    print(f"  workbench decode loop: {ours:7.0f} completion tokens/s ({totals[True][0]} tokens in {totals[True][1]:.1f} s)")
    print(f"  ratio: {ours / hf:.2f}x")

    same = 0
    greedy = copy.deepcopy(config)
    greedy.update(do_sample=False)
    for k in range(1, args.rounds + 1):
        inputs = batch(k)
        with torch.no_grad():
            decoding.ENABLED = False
            reference = model.generate(**inputs, generation_config=greedy)
            decoding.ENABLED = True
            same += int(torch.equal(reference, model.generate(**inputs, generation_config=greedy)))
    print(f"greedy decoding: identical tokens in {same} of {args.rounds} calls")


if __name__ == "__main__":
    main()
