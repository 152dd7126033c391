"""The shipped model: a small trained checkpoint inside the package, so that `workbench ask`, the
demo and notebooks 05-06 answer with real traces before anything is trained.

    workbench ask --data runs/smoke/data --split test --index 0 --path dtr     # --model shipped
    workbench ship --model RUN/grpo --eval RUN/eval [--note TEXT] --overwrite  # regenerate it

`SHIPPED` ("shipped") is a model name that `workbench.model.load` resolves to `shipped_dir()`.
The folder holds what `load` reads (weights as safetensors, config, processor) and `MANIFEST`: where
the checkpoint came from (its folder, the training settings and run manifest it carries, the git
commit it was shipped at, a note with the commands that made it), the categories its data asked,
its held-out numbers per path and split next to chance and the blank-image baseline, and the
SHA-256 of every file, which `check` verifies so that a truncated or LFS-pointer weight file is
named instead of failing inside safetensors. Regenerate it whenever the architecture changes
(`tests/test_shipped.py` loads it with the current code and checks it beats chance).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from workbench import io, rundir

SHIPPED = "shipped"
"""The model name that stands for the shipped checkpoint (`--model shipped`, the default of `ask` and `demo`)."""
MANIFEST = "manifest.json"
"""The shipped checkpoint's provenance, categories, metrics and file hashes."""
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json", "processor_config.json", "chat_template.jinja")
"""What `load` reads from a built-in model folder; `ship` copies these (checkpoints and logs stay behind)."""
SETTINGS_FILES = ("base_settings.json", "sft_settings.json", "grpo_settings.json")
"""Training settings a stage writes beside its model; the manifest keeps the one it finds."""
_HEADLINE_KEYS = ("choice_accuracy", "number_mra", "center_error_m", "format_rate", "n")
_BASELINES = {"chance": "chance", "language_prior": "blank image", "oracle": "oracle"}


def shipped_dir() -> Path:
    """The folder of the shipped checkpoint (package data of `workbench.model`)."""
    return Path(__file__).resolve().parent / "shipped_model"


def resolve(name: str | Path) -> str:
    """`shipped_dir()` for the name `SHIPPED`, else `name` unchanged (as text)."""
    return str(shipped_dir()) if str(name) == SHIPPED else str(name)


def manifest(folder: str | Path | None = None) -> dict[str, Any]:
    """The manifest of the shipped checkpoint (or of a folder `ship` wrote); FileNotFoundError when
    there is none."""
    path = Path(folder or shipped_dir()) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise FileNotFoundError(f"no shipped model: {str(path)!r} is missing (regenerate it with `workbench ship`)") from None
    except ValueError as err:
        raise ValueError(f"the shipped model's manifest {str(path)!r} is corrupt: {err}") from None


def check(folder: str | Path | None = None) -> dict[str, Any]:
    """The manifest, after checking that every file it lists is there with its SHA-256; a
    ValueError names the first file that differs (e.g. a Git LFS pointer instead of the weights)."""
    folder = Path(folder or shipped_dir())
    found = manifest(folder)
    for name, digest in found.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"the shipped model is incomplete: {str(path)!r} is missing")
        if _sha256(path) != digest:
            raise ValueError(f"the shipped model's {name} does not match its manifest ({str(path)!r}: "
                             f"{path.stat().st_size} bytes); regenerate it with `workbench ship` or check out the file again")
    return found


def ship(model_dir: str | Path, eval_dir: str | Path | None = None, out: str | Path | None = None, *,
         note: str = "", overwrite: bool = False) -> Path:
    """Copy the built-in model in `model_dir` (a `workbench sft` / `grpo` output) into `out` (the
    package's `shipped_dir()` by default) with its manifest; returns `out`.

    `eval_dir`: a `workbench eval` folder of that model (its `metrics.json`); the manifest keeps the
    `all` rows of the model, chance and the blank image per path and split, and the categories they
    cover. The model's own label in the evaluation is the one whose rows are kept: the only trained
    model there, or `grpo`, else `sft`. `note`: how the model was made (commands). The folder is
    replaced in one rename, and only with `overwrite`."""
    model_dir = Path(model_dir)
    missing = [n for n in MODEL_FILES if not (model_dir / n).is_file()]
    if not model_dir.is_dir() or missing:
        raise FileNotFoundError(f"{str(model_dir)!r} is not a finished built-in model folder (missing {', '.join(missing) or 'the folder'})")
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if "workbench_region_features" not in config:
        raise ValueError(f"{str(model_dir)!r} is not the built-in model; only it is small enough to ship")
    out = Path(out or shipped_dir())
    metrics, categories = _eval_summary(Path(eval_dir)) if eval_dir else ({}, [])
    record: dict[str, Any] = {
        "format": "srreal-workbench-shipped-1",
        "source": str(model_dir.resolve()),
        "shipped_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": rundir.git_commit(),
        "note": note,
        "settings": _first_json(model_dir, SETTINGS_FILES),
        "run_manifest": _run_manifest(model_dir),
        "eval": str(Path(eval_dir).resolve()) if eval_dir else None,
        "categories": categories,
        "metrics": metrics,
    }
    with io.atomic_dir(out, overwrite=overwrite) as tmp:
        for name in MODEL_FILES:
            shutil.copyfile(model_dir / name, tmp / name)
        record["files"] = {name: _sha256(tmp / name) for name in MODEL_FILES}
        io.write_json(tmp / MANIFEST, record)
    return out


def headline(record: dict[str, Any]) -> list[str]:
    """Lines of text: the manifest's numbers per path (val / test / test_ood) next to the baselines."""
    lines = []
    for path in ("lor", "dtr"):
        found = record.get("metrics", {})
        for label in sorted(found, key=lambda k: (k != "model", k)):
            rows = found[label]
            cells = [rows.get(f"{path}/{split}", {}) for split in ("val", "test", "test_ood")]
            if not any(cells):
                continue
            acc = " / ".join(_fmt(c.get("choice_accuracy")) for c in cells)
            line = f"{path.upper()} {label}: choice {acc}"
            if path == "dtr" and any(c.get("center_error_m") is not None for c in cells):
                line += "; center " + " / ".join(_fmt(c.get("center_error_m")) for c in cells) + " m"
            lines.append(line)
    return lines


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="finished built-in model folder (RUN/grpo or RUN/sft)")
    parser.add_argument("--eval", default=None, help="`workbench eval` folder of that model (its metrics go into the manifest)")
    parser.add_argument("--note", default="", help="how the model was made (the commands), kept in the manifest")
    parser.add_argument("--out", default=None, help="target folder (default: the package's shipped model)")
    parser.add_argument("--overwrite", action="store_true", help="replace the model already there")


def cli(args: argparse.Namespace) -> int:
    target = Path(args.out or shipped_dir())
    if target.exists() and not args.overwrite:
        raise FileExistsError(f"{str(target)!r} already holds a model; pass --overwrite to replace it")
    out = ship(args.model, args.eval, args.out, note=args.note, overwrite=args.overwrite)
    record = manifest(out)
    size = sum((out / n).stat().st_size for n in record["files"]) / 1e6
    print(f"wrote {out} ({size:.1f} MB; categories: {', '.join(record['categories']) or 'not recorded'})")
    for line in headline(record):
        print("  " + line)
    return 0


# ---------------------------------------------------------------------------------------------
# Helpers


def _eval_summary(eval_dir: Path) -> tuple[dict[str, dict[str, dict]], list[str]]:
    """({label: {"path/split": headline numbers}}, categories) from an evaluation's metrics.json."""
    path = eval_dir / "metrics.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise FileNotFoundError(f"no evaluation metrics at {str(path)!r}") from None
    except ValueError as err:
        raise ValueError(f"evaluation metrics {str(path)!r} are corrupt: {err}") from None
    trained = sorted({r["model"] for r in rows} - set(_BASELINES))
    if not trained:
        raise ValueError(f"{str(path)!r} has no trained model, only baselines")
    model = trained[0] if len(trained) == 1 else next((m for m in ("grpo", "sft") if m in trained), None)
    if model is None:
        raise ValueError(f"{str(path)!r} evaluates several models ({', '.join(trained)}); evaluate the shipped one alone")
    summary: dict[str, dict[str, dict]] = {}
    for label in (model, "chance", "language_prior"):
        picked = {f"{r['path']}/{r['split']}": {k: r.get(k) for k in _HEADLINE_KEYS}
                  for r in rows if r["model"] == label and r["category"] == "all" and r["path"] in ("lor", "dtr")}
        if picked:
            summary["model" if label == model else _BASELINES[label]] = picked
    categories = sorted({r["category"] for r in rows if r["model"] == model and r["category"] != "all"})
    return summary, categories


def _first_json(folder: Path, names: tuple[str, ...]) -> dict[str, Any] | None:
    for name in names:
        path = folder / name
        if path.is_file():
            return {"file": name, **json.loads(path.read_text(encoding="utf-8"))}
    return None


def _run_manifest(model_dir: Path) -> dict[str, Any] | None:
    """The `workbench run` manifest of the run folder the model sits in, without its notebook paths."""
    path = model_dir.parent / rundir.MANIFEST
    if not path.is_file():
        return None
    found = json.loads(path.read_text(encoding="utf-8"))
    return {k: found.get(k) for k in ("profile", "seed", "git_commit", "data_fingerprint", "model")}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"
