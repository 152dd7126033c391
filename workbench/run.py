"""`workbench run`: the main job. Executes notebooks 01-06 in order with papermill.

The notebooks a person steps through in JupyterLab are the pipeline: this module only runs
them headlessly, passing each the same parameters (profile, run folder, seed, model and any
overrides), and records what happened.

    DIR/notebooks/NN_*.ipynb   executed copies (outputs kept)
    DIR/data, base, sft, grpo, eval  the stage outputs the notebooks write
    DIR/manifest.json          profile, parameters, seeds, data fingerprint, versions, git
                               commit, status and timing per stage
    DIR/metrics.json           the evaluation table (copied from DIR/eval)
    DIR/report.html            self-contained report: results table, charts, curves

A failed cell stops the run with the notebook, cell and error named; `--from STAGE` resumes
there without redoing the stages the manifest marks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from workbench import io, rundir
from workbench.settings import PROFILES

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
STAGES = (
    ("data", "01_build_data.ipynb"),
    ("base", "02_base.ipynb"),
    ("sft", "03_cold_start_sft.ipynb"),
    ("grpo", "04_grpo.ipynb"),
    ("eval", "05_evaluate.ipynb"),
    ("traces", "06_traces_3d.ipynb"),
)
STAGE_NAMES = tuple(name for name, _ in STAGES)
TRAINING_FOLDERS = {"base": rundir.BASE, "sft": rundir.SFT, "grpo": rundir.GRPO}
"""Stages that train, and the run-folder folder whose `progress.json` says where they are."""
KERNEL_ENV = {
    "WORKBENCH_STATIC_WIDGETS": "1",  # widgets._common.STATIC_ENV: widgets saved as static snapshots
    "TQDM_DISABLE": "1",  # library progress bars (loading weights, writing shards, dataset maps) would be
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # saved as widgets stuck at 0%; `workbench run` shows the
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # training's own progress beside the stage bar instead
}
"""Environment of the notebook kernels `run` starts: executed notebooks are read afterwards, in
JupyterLab or on GitHub, without the live widget state."""


class kernel_environment:
    """Context manager: `KERNEL_ENV` set in this process (kernels inherit it), restored on exit."""

    def __enter__(self):
        self._saved = {key: os.environ.get(key) for key in KERNEL_ENV}
        os.environ.update(KERNEL_ENV)
        return self

    def __exit__(self, *exc):
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        return False


PACKAGES = ("workbench", "torch", "transformers", "trl", "peft", "datasets", "open3d", "papermill", "gradio")


@dataclass
class RunSettings:
    """Settings of one `workbench run`."""

    profile: str = "smoke"
    """Profile passed to every notebook: smoke | default | gpu."""
    out: str = "runs/smoke"
    """Run folder; stage outputs, executed notebooks, manifest and report go here."""
    seed: int = 0
    """Seed passed to every notebook."""
    model: str = ""
    """"" = the built-in tiny model; else a pretrained VLM name or path (e.g. a Qwen2.5-VL)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Extra notebook parameters: {name: value} for every stage, or {stages: {stage: {...}}}."""
    from_stage: str | None = None
    """Resume at this stage; earlier stages must be marked done in the manifest."""
    kernel_name: str = "python3"
    """Jupyter kernel the notebooks run on."""
    overwrite: bool = False
    """Replace a run already in `out` (all its stages) instead of refusing."""

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {PROFILES}")
        if self.from_stage is not None and self.from_stage not in STAGE_NAMES:
            raise ValueError(f"unknown stage {self.from_stage!r}; choose one of {STAGE_NAMES}")
        unknown = set(self.params.get("stages", {})) - set(STAGE_NAMES)
        if unknown:
            raise ValueError(f"params file names unknown stages {sorted(unknown)}; stages are {STAGE_NAMES}")


class StageProgress:
    """While a training stage's notebook runs, a progress line (step of steps, loss, time left)
    fed by the `progress.json` its trainer writes (`train.progress.ProgressCallback`): the kernel's
    own output is not visible from here, and one SFT cell can take most of an hour. A context
    manager; `folder=None` shows nothing. A file older than the stage is not read (a previous run's)."""

    def __init__(self, folder: Path | None, stage: str, every: float = 2.0):
        self.folder, self.stage, self.every = folder, stage, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar = None
        self._since = time.time()

    def __enter__(self) -> StageProgress:
        if self.folder is not None:
            self._since = time.time()
            self._thread = threading.Thread(target=self._watch, name=f"progress-{self.stage}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._bar is not None:
            self._bar.close()

    def latest(self) -> dict[str, Any] | None:
        """The stage's progress, if it was written since the stage started."""
        if self.folder is None:
            return None
        try:
            if (self.folder / rundir.PROGRESS).stat().st_mtime < self._since - 1:
                return None
        except OSError:
            return None
        return rundir.read_progress(self.folder)

    def _watch(self) -> None:
        from tqdm.auto import tqdm

        while not self._stop.wait(self.every):
            found = self.latest()
            if not found or not found.get("steps"):
                continue
            if self._bar is None:
                # counted from the first step seen, so the rate is the stage's, not a jump to it
                self._bar = tqdm(total=int(found["steps"]), initial=int(found.get("step") or 0),
                                 desc=f"  {self.stage} steps", unit="step", position=2, leave=False)
            self._bar.total = int(found["steps"])
            self._bar.n = int(found.get("step") or 0)
            loss = found.get("loss")
            self._bar.set_postfix_str("" if loss is None else f"loss {loss:.3f}", refresh=False)
            self._bar.refresh()


class StageFailed(RuntimeError):
    """A notebook cell raised; the message names the stage, notebook, cell and error."""


def stage_parameters(settings: RunSettings, stage: str) -> dict[str, Any]:
    """Parameters papermill injects into one stage's notebook."""
    common = {k: v for k, v in settings.params.items() if k != "stages"}
    params = {
        "profile": settings.profile,
        "run_dir": str(Path(settings.out).resolve()),
        "seed": settings.seed,
        "model": settings.model,
        **common,
    }
    params.update(settings.params.get("stages", {}).get(stage, {}))
    return params


def run(settings: RunSettings, progress: bool = True) -> dict[str, Any]:
    """Execute the stages in order; return the manifest. Raises StageFailed on a failed cell."""
    import papermill as pm
    from tqdm.auto import tqdm

    out = Path(settings.out).resolve()
    manifest_path = out / rundir.MANIFEST
    if settings.overwrite and settings.from_stage:
        raise ValueError("--overwrite starts the run over; it does not go with --from")
    if settings.overwrite and manifest_path.exists():
        shutil.rmtree(out)  # a run folder: ours to replace (a foreign folder is refused below)
    # a run to resume must have a manifest; a new run into a run folder is checked against its one
    manifest = _load_manifest(manifest_path) if settings.from_stage or manifest_path.exists() else {}
    start = STAGE_NAMES.index(settings.from_stage) if settings.from_stage else 0
    differences = settings_differences(manifest, settings, start) if manifest else []
    if differences:
        raise FileExistsError(
            f"{out} holds a run made with other settings ({'; '.join(differences)}); its stages would mix "
            "the two. Pass --overwrite to start it over, give a new --out, or repeat its settings"
            + (" (with --from STAGE to redo a stage)" if not settings.from_stage else ""))
    for name in STAGE_NAMES[:start]:
        status = manifest.get("stages", {}).get(name, {}).get("status")
        if status != "done":
            raise ValueError(
                f"cannot resume from {settings.from_stage!r}: stage {name!r} is not finished in "
                f"{manifest_path} (status {status!r}); run without --from first"
            )
    if not settings.from_stage and out.exists() and any(out.iterdir()) and not manifest_path.exists():
        raise FileExistsError(f"{out} exists and is not a workbench run folder (no manifest.json)")

    manifest.update(
        {
            "profile": settings.profile,
            "seed": settings.seed,
            "model": settings.model or "built-in tiny model",
            "settings": asdict(settings),
            "versions": _versions(),
            "git_commit": rundir.git_commit(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        }
    )
    stages = manifest.setdefault("stages", {})
    for name in STAGE_NAMES[start:]:
        stages.pop(name, None)  # a resumed stage and everything after it run again
    (out / rundir.NOTEBOOKS).mkdir(parents=True, exist_ok=True)
    io.write_json(manifest_path, manifest)

    bar = tqdm(STAGES[start:], desc="stages", unit="stage", disable=not progress, position=0)
    for index, (name, notebook) in enumerate(bar, start=start + 1):
        bar.set_description(f"stage {index}/{len(STAGES)} {name}")
        params = stage_parameters(settings, name)
        executed = out / rundir.NOTEBOOKS / notebook
        t0 = time.time()
        stages[name] = {"status": "running", "notebook": str(executed), "parameters": params}
        io.write_json(manifest_path, manifest)
        try:
            with StageProgress(out / TRAINING_FOLDERS[name] if name in TRAINING_FOLDERS and progress else None, name), \
                    kernel_environment():
                pm.execute_notebook(
                    str(NOTEBOOK_DIR / notebook),
                    str(executed),
                    parameters=params,
                    kernel_name=settings.kernel_name,
                    cwd=str(NOTEBOOK_DIR),
                    progress_bar={"desc": f"  {notebook}", "position": 1, "leave": False} if progress else False,
                )
        except pm.PapermillExecutionError as err:
            stages[name].update(status="failed", seconds=round(time.time() - t0, 1))
            stages[name]["error"] = {"cell": err.exec_count, "ename": err.ename, "evalue": err.evalue}
            io.write_json(manifest_path, manifest)
            raise StageFailed(
                f"stage {name!r} failed: {notebook} cell [{err.exec_count}] raised {err.ename}: {err.evalue}\n"
                f"executed copy with the traceback: {executed}\n"
                f"after fixing it, resume with: workbench run --profile {settings.profile} "
                f"--out {settings.out} --from {name}"
            ) from None
        stages[name].update(status="done", seconds=round(time.time() - t0, 1))
        if name == "data":
            manifest["data_fingerprint"] = data_fingerprint(out / rundir.DATA)
        io.write_json(manifest_path, manifest)
    bar.close()

    metrics = out / rundir.EVAL / rundir.METRICS
    if metrics.exists():
        shutil.copyfile(metrics, out / rundir.METRICS)
    manifest["total_seconds"] = round(sum(s.get("seconds", 0) for s in stages.values()), 1)
    io.write_json(manifest_path, manifest)
    write_report(out, manifest)
    return manifest


def settings_differences(manifest: dict[str, Any], settings: RunSettings, start: int = 0) -> list[str]:
    """What differs between the run recorded in `manifest` and `settings`, as "field: old -> new"
    texts: the profile, the seed, the model, and the parameters of the stages whose outputs the run
    would reuse (those before stage `start`; a stage run again may change its own). [] = none."""
    old = manifest.get("settings") or {}
    if not old:
        return []
    out = [f"{name}: {old.get(name)!r} -> {getattr(settings, name)!r}"
           for name in ("profile", "seed", "model") if old.get(name) != getattr(settings, name)]
    before = RunSettings(profile=old.get("profile", "smoke"), seed=old.get("seed", 0), model=old.get("model", ""),
                         params=old.get("params") or {})
    reused = STAGE_NAMES[:start] if start else STAGE_NAMES
    for stage in reused:
        a, b = stage_parameters(before, stage), stage_parameters(settings, stage)
        for key in sorted((set(a) | set(b)) - {"profile", "seed", "model", "run_dir"}):
            if a.get(key) != b.get(key):
                out.append(f"{stage} parameter {key}: {a.get(key)!r} -> {b.get(key)!r}")
    return out


def data_fingerprint(data_dir: Path) -> str | None:
    """sha256 over the dataset's files (names and bytes): same data, same fingerprint."""
    if not data_dir.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(data_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def write_report(out: Path, manifest: dict[str, Any]) -> Path:
    """A self-contained report.html: run summary, results table, charts and training curves."""
    from workbench import report
    return io.write_text(out / rundir.REPORT, report.render(out, manifest))


def _load_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"no manifest at {path}: nothing to resume (run without --from first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"corrupt run manifest {path}: {err}") from None


def _versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version("srreal-workbench" if name == "workbench" else name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _read_params_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    import yaml

    if not os.path.exists(path):
        raise FileNotFoundError(f"params file {path} does not exist")
    try:
        params = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"params file {path} is not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise ValueError(f"params file {path} must hold a mapping of parameter names, got {type(params).__name__}")
    return params


# ----------------------------------------------------------------------------- a run folder's inputs


def prepare_base(run_dir: str | Path, profile: str = "smoke", seed: int = 0, progress: bool = False,
                 **overrides: Any) -> Path:
    """The base model folder of a run folder (`{run_dir}/base`), made when missing: the dataset from
    the seed (`workbench.dataset.build`), then the base stage (`workbench.train.base.train_base`,
    `overrides` are `BaseSettings` fields; an interrupted one continues). Notebook 03 and
    `prepare_run` call it, so cold-start SFT of the built-in model always starts from a base model."""
    from workbench.dataset import build as data
    from workbench.train import base

    run = Path(run_dir)
    data_dir = run / rundir.DATA
    if not data.is_dataset_dir(data_dir):
        data.build_dataset(data.DataSettings.from_profile(profile, seed=seed), data_dir, progress=progress)
    out = run / rundir.BASE
    if not (out / base.SUMMARY).is_file():  # written after the model: a finished stage
        settings = base.BaseSettings.from_profile(profile, seed=seed, disable_tqdm=not progress, **overrides)
        base.train_base(data_dir, out, settings, resume="auto")
    return out


def prepare_run(
    run_dir: str | Path, profile: str = "smoke", seed: int = 0, model: str = "", progress: bool = False,
    shipped: bool | str = "auto",
) -> tuple[Path, dict[str, Path]]:
    """(data folder, {label: model folder}) of a run folder, regenerating the dataset from the seed
    when it is missing (`workbench.dataset.build`). Notebooks 05 and 06 call it, so each runs on its own.

    The models are the run's SFT and GRPO models. A run without either gets the shipped checkpoint
    (`workbench.model.shipped`) when it uses the built-in model (`model` empty) and one is shipped;
    otherwise an SFT model is trained (`workbench.train.sft.train_sft`, from `model`, or for the built-in
    model from its base stage, `prepare_base`). `shipped`: also evaluate the shipped model beside the
    run's, last (so it is the "main" model of the plots and the blank-image baseline); "auto" = on the
    smoke profile only, where the run's own models have trained for seconds."""
    from workbench.dataset import build as data
    from workbench.model import shipped as shipped_model
    from workbench.train import sft

    if shipped not in (True, False, "auto"):
        raise ValueError(f"shipped must be True, False or 'auto', got {shipped!r}")
    run = Path(run_dir)
    data_dir = run / rundir.DATA
    if not data.is_dataset_dir(data_dir):
        data.build_dataset(data.DataSettings.from_profile(profile, seed=seed), data_dir, progress=progress)
    models = rundir.model_dirs(run)
    has_shipped = not model and (shipped_model.shipped_dir() / shipped_model.MANIFEST).is_file()
    if not models and has_shipped:
        return data_dir, {shipped_model.SHIPPED: shipped_model.shipped_dir()}
    if not models:
        settings = sft.SFTSettings.from_profile(profile, seed=seed, disable_tqdm=not progress)
        start = model or str(prepare_base(run, profile, seed, progress))
        sft.train_sft(data_dir, run / rundir.SFT, settings, model_name_or_path=start, resume=True)
        models = rundir.model_dirs(run)
    if has_shipped and (shipped is True or (shipped == "auto" and profile == "smoke")):
        models[shipped_model.SHIPPED] = shipped_model.shipped_dir()
    return data_dir, models


def run_evaluation(
    run_dir: str | Path,
    profile: str = "smoke",
    seed: int = 0,
    model: str = "",
    progress: bool = False,
    shipped: bool | str = "auto",
    **overrides: Any,
):
    """Evaluate a run folder's models (`prepare_run`, with the shipped model as it says) and the
    three baselines into `{run_dir}/eval`; returns the `EvalResult`. `overrides` are `EvalSettings` fields."""
    from workbench.eval import evaluate as E

    data_dir, models = prepare_run(run_dir, profile, seed, model, progress, shipped)
    overrides = {"baselines": E.BASELINES, "seed": seed, **overrides}
    settings = E.EvalSettings.from_profile(profile, **overrides)
    return E.evaluate(models, data_dir, Path(run_dir) / rundir.EVAL, settings, progress=progress,
                      overwrite=True)  # a stage that runs again replaces its own output




def add_arguments(parser) -> None:
    parser.add_argument("--profile", default="smoke", choices=PROFILES, help="profile for every notebook")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--params", default=None, help="YAML of extra notebook parameters (or stages: {name: {...}})")
    parser.add_argument("--from", dest="from_stage", default=None, choices=STAGE_NAMES, help="resume at this stage")
    parser.add_argument("--model", default="", help="pretrained VLM name or path (default: the built-in tiny model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace the run already in --out")


def cli(args) -> int:
    settings = RunSettings(
        profile=args.profile,
        out=args.out,
        seed=args.seed,
        model=args.model,
        params=_read_params_file(args.params),
        from_stage=args.from_stage,
        overwrite=args.overwrite,
    )
    try:
        manifest = run(settings)
    except StageFailed as err:
        print(f"workbench run: {err}", file=sys.stderr)
        return 1
    out = Path(settings.out)
    print(f"done in {manifest['total_seconds']} s: {out / 'report.html'}, {out / 'metrics.json'}")
    return 0
