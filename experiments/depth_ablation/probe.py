"""Do a model's region features carry the 3D center? A linear probe: the pooled `<region>`
features (the pooled vision features, and the region projection's output that the language
model reads) of held-out questions,
ridge-regressed onto the true camera-frame centers; median error of the probe's centers on a
held-out part, for the images with their depth and without it.

    python experiments/depth_ablation/probe.py MODEL_DIR DATA_DIR [--split val] [--rows 300]

A low error with depth and a high one without says the 3D positional embedding reaches the
language model; if the trained model's DTR centers are still far off, what is missing is the
read-out into digits, not the information.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def region_features(model, processor, rows, depth: bool) -> list[np.ndarray]:
    from workbench import model as M

    captured: list[torch.Tensor] = []
    proj = M.region_backbone(model).region_proj
    hook = proj.register_forward_hook(lambda m, i, o: captured.append(torch.cat([i[0].detach(), o.detach()], -1)))
    out = []
    try:
        with torch.no_grad():
            for row in rows:
                captured.clear()
                model(**M.model_inputs(processor, [row], "dtr", True, depth=depth))
                out.append(captured[0].float().reshape(-1, captured[0].shape[-1]).numpy())
    finally:
        hook.remove()
    return out


def probe_error(x: np.ndarray, y: np.ndarray, seed: int = 0, alpha: float = 1.0) -> float:
    """Median 3D error (m) of a ridge probe fitted on 70% of the regions, on the other 30%."""
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.7 * len(x))
    train, test = order[:cut], order[cut:]
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    xs = (x - mu) / sd
    y_mean = y[train].mean(0)  # the intercept is not shrunk
    w = np.linalg.solve(xs[train].T @ xs[train] + alpha * np.eye(xs.shape[1]), xs[train].T @ (y[train] - y_mean))
    pred = xs[test] @ w + y_mean
    return float(np.median(np.linalg.norm(pred - y[test], axis=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--split", default="val")
    parser.add_argument("--rows", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from workbench import model as M
    from workbench.dataset import load_dataset_dir, views
    from workbench.schema import centers_of

    model, processor = M.load(args.model)
    model.eval()
    ds = load_dataset_dir(args.data)[args.split]
    ds = ds.select([i for i, t in enumerate(views.column(ds, "task")) if t == "region_qa"], keep_in_memory=True)
    rows = [dict(ds[i]) for i in range(min(args.rows, len(ds)))]
    targets, keep = [], []
    for k, row in enumerate(rows):
        centers = centers_of(row)
        labels = [r["label"] for r in row["regions"]]
        if labels and all(lab in centers for lab in labels):
            keep.append(k)
            targets.append(np.array([centers[lab] for lab in labels]))
    rows = [rows[k] for k in keep]
    y = np.concatenate(targets)
    mean_error = float(np.median(np.linalg.norm(y - y.mean(0), axis=1)))
    print(f"{len(rows)} questions, {len(y)} regions; always the mean center: {mean_error:.3f} m")
    for depth in (True, False):
        feats = region_features(model, processor, rows, depth)
        if sum(len(f) for f in feats) != len(y):
            raise SystemExit("region count mismatch between features and targets")
        both = np.concatenate(feats)
        width = M.region_backbone(model).region_proj[0].in_features
        for name, x in (("pooled vision features", both[:, :width]), ("region embedding", both[:, width:])):
            best = min((np.mean([probe_error(x, y, seed, a) for seed in range(5)]), a) for a in (1.0, 30.0, 300.0))
            print(f"depth {'on ' if depth else 'off'}, {name:>22}: probe median error {best[0]:.3f} m (ridge {best[1]:g})")


if __name__ == "__main__":
    main()
