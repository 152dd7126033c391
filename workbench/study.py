"""The claims study (issue #23): the paper's four claims (SPEC section 1), each tested with a control,
over several seeds, resumable run by run, and a results page made from flat JSON rows.

    workbench study claims --preset default --seeds 0,1,2 --out runs/claims [--results results/claims]
    workbench study page --results results/claims --out docs/RESULTS.md

Per seed the study trains and evaluates (`plan`), sharing what can be shared: one dataset and one
base model; four cold starts (`blend`, `lor_only`, `dtr_only`, `cot_only`); five RL runs (`joint`
from the blend, `lor_only` / `dtr_only` on their own path from their own SFT, `cot_only` joint from
the chain-of-thought-only cold start, `no_detect`: joint without the detection reward); each RL
model evaluated on both paths and `auto`, on `test` and `test_ood`; the chance, oracle and
blank-image baselines beside the `joint` model, in its evaluation (the blank image is that model's).
Which comparison tests which claim:

1. one model, both paths (`joint`): DTR against LOR per category (DTR should win on region
   numeric categories, LOR hold its own on general ones);
2. joint training against either path alone (`joint` vs `lor_only` on LOR, vs `dtr_only` on DTR);
3. the blended cold start against chain-of-thought only, both followed by the same RL: accuracy
   and stability (reward at the end, its spread over steps, KL, kept groups);
4. transfer: `test` against `test_ood`, and each single-path model on the path it never trained on;
and, beside them, what the discrete detection reward adds (`joint` vs `no_detect`).

Every unit is skipped when its output is finished (a model's `config.json`, an evaluation's
`metrics.json`) and resumed from its last checkpoint when it was interrupted, so a killed study
goes on at the first unfinished unit. `study_log.jsonl` records each unit's outcome. Rows:
`{results}/seed{S}.json`, flat (`claim, run, seed, model, path, split, category, metric, value`);
`page` turns them into a Markdown page (mean, spread and paired tests over seeds; a verdict per
claim), byte for byte the same for the same rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench import io, rundir

SFT_RUNS = {"blend": "blend", "lor_only": "lor_only", "dtr_only": "dtr_only", "cot_only": "cot_only"}
"""Cold starts: name -> `SFTSettings.blend`."""
RL_RUNS = {
    "joint": {"sft": "blend", "paths": "joint", "detect_reward": True},
    "lor_only": {"sft": "lor_only", "paths": "lor", "detect_reward": True},
    "dtr_only": {"sft": "dtr_only", "paths": "dtr", "detect_reward": True},
    "cot_only": {"sft": "cot_only", "paths": "joint", "detect_reward": True},
    "no_detect": {"sft": "blend", "paths": "joint", "detect_reward": False},
}
"""RL runs: name -> the cold start it starts from and its GRPO settings."""
CLAIMS = {
    "1": "one RL-trained model supports both paths: DTR wins on region-aware quantitative tasks, LOR helps general ones",
    "2": "training both paths jointly beats training either alone",
    "3": "a blended cold start is crucial for stable RL",
    "4": "the model transfers across domains, with positive transfer between LOR and DTR",
    "detect": "the discrete center-distance reward helps DTR (not one of the four claims: what the reward adds)",
}
RUN_CLAIMS = {"joint": ("1", "2", "3", "4", "detect"), "lor_only": ("2", "4"), "dtr_only": ("2", "4"),
              "cot_only": ("3",), "no_detect": ("detect",), "baselines": ("1", "2", "3", "4", "detect")}
BASELINES = ("chance", "oracle", "language_prior")
BASELINE_RUN = "joint"
"""The baselines are evaluated with this run's model (the blank image is that model's) and reported
as run `baselines`."""
PAIRS = [("2", "joint", "lor_only", "lor"), ("2", "joint", "dtr_only", "dtr"), ("3", "joint", "cot_only", "auto"),
         ("detect", "joint", "no_detect", "dtr")]
"""Paired comparisons (claim, run A, run B, path): the same questions, so McNemar's exact test."""
METRICS = ("choice_accuracy", "number_mra", "center_error_m", "format_rate")
SPLITS = ("test", "test_ood")
LOG_FILE = "study_log.jsonl"


@dataclass
class StudySettings:
    """Settings of one claims study (`workbench study claims`). Presets: `from_preset`."""

    preset: str = "smoke"
    """smoke (tiny runs: tests and CI; numbers mean nothing) | default (each run a `default` job)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds; each gets its own data, base model and runs."""
    profile: str = "smoke"
    """The stages' profile (data, base, sft, grpo, eval presets)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Overrides of DataSettings."""
    base: dict[str, Any] = field(default_factory=dict)
    """Overrides of BaseSettings."""
    sft: dict[str, Any] = field(default_factory=dict)
    """Overrides of SFTSettings (every cold start)."""
    grpo: dict[str, Any] = field(default_factory=dict)
    """Overrides of GRPOSettings (every RL run)."""
    eval: dict[str, Any] = field(default_factory=dict)
    """Overrides of EvalSettings."""

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> StudySettings:
        presets: dict[str, dict[str, Any]] = {
            # seconds per run: the plumbing of every unit and row kind, nothing learned
            "smoke": dict(profile="smoke", sft={"max_steps": 4, "eval_samples": 0},
                          base={"max_steps": 2, "copy_warmup_steps": 2, "eval_samples": 0},
                          grpo={"max_steps": 1, "max_refill_tries": 0}, eval={"max_examples": 6, "max_new_tokens": 24}),
            # every run a `default` job: the full task set, the profiles' budgets
            "default": dict(profile="default", data={"categories": "all", "general_fraction": 0.3,
                                                     "blend_per_scene": 3}),
        }
        if name not in presets:
            raise ValueError(f"unknown study preset {name!r}; choose from {sorted(presets)}")
        values = {**presets[name], **overrides, "preset": name}
        return cls(**values)

    def __post_init__(self):
        self.seeds = tuple(int(s) for s in self.seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds!r}")


@dataclass
class Unit:
    """One step of the study: what it makes, where, and how to tell it is done."""

    seed: int
    kind: str  # base | sft | grpo | eval
    name: str
    out: Path
    done: Callable[[], bool]
    run: Callable[[], Any]

    @property
    def key(self) -> str:
        return f"seed{self.seed}/{self.kind}/{self.name}"


def plan(settings: StudySettings, out: str | Path) -> list[Unit]:
    """The units of the study in order, seed by seed (a partial study holds whole seeds first)."""
    return [unit for seed in settings.seeds for unit in _seed_units(settings, Path(out) / f"seed{seed}", seed)]


def _seed_units(settings: StudySettings, root: Path, seed: int) -> list[Unit]:
    data_dir, base_dir = root / rundir.DATA, root / rundir.BASE

    def finished_model(folder: Path) -> Callable[[], bool]:
        return lambda: rundir.is_finished_model(folder)

    units = [Unit(seed, "base", "base", base_dir, lambda: (base_dir / "base_summary.json").is_file(),
                  lambda: _base(settings, root, seed))]
    for name, blend in SFT_RUNS.items():
        d = root / "sft" / name
        units.append(Unit(seed, "sft", name, d, finished_model(d),
                          lambda d=d, b=blend: _sft(settings, data_dir, base_dir, d, seed, b)))
    for name, spec in RL_RUNS.items():
        d, start = root / "grpo" / name, root / "sft" / spec["sft"]
        units.append(Unit(seed, "grpo", name, d, finished_model(d),
                          lambda d=d, st=start, sp=spec: _grpo(settings, data_dir, st, d, seed, sp)))
    for name in RL_RUNS:
        d = root / "eval" / name
        units.append(Unit(seed, "eval", name, d, lambda d=d: (d / "metrics.json").is_file(),
                          lambda d=d, r=name: _eval(settings, data_dir, r, root / "grpo" / r, d, seed)))
    return units


def _base(settings: StudySettings, root: Path, seed: int) -> None:
    from workbench.dataset import build as data
    from workbench.train import base

    data_dir = root / rundir.DATA
    if not data.is_dataset_dir(data_dir):
        data.build_dataset(data.DataSettings.from_profile(settings.profile, seed=seed, **settings.data), data_dir,
                           progress=False)
    s = base.BaseSettings.from_profile(settings.profile, seed=seed, disable_tqdm=True, **settings.base)
    base.train_base(data_dir, root / rundir.BASE, s, resume="auto")


def _sft(settings: StudySettings, data_dir: Path, base_dir: Path, out: Path, seed: int, blend: str) -> None:
    from workbench.train import sft

    s = sft.SFTSettings.from_profile(settings.profile, seed=seed, blend=blend, disable_tqdm=True, **settings.sft)
    sft.train_sft(data_dir, out, s, model_name_or_path=str(base_dir), resume="auto")


def _grpo(settings: StudySettings, data_dir: Path, start: Path, out: Path, seed: int, spec: Mapping) -> None:
    from workbench.train import grpo
    from workbench.train.grpo_settings import GRPOSettings

    s = GRPOSettings.from_profile(settings.profile, seed=seed, paths=spec["paths"],
                                  detect_reward=spec["detect_reward"], **settings.grpo)
    grpo.train_grpo(start, data_dir, out, s, resume="auto")


def _eval(settings: StudySettings, data_dir: Path, run: str, model: Path, out: Path, seed: int) -> None:
    from workbench.eval import evaluate as E

    s = E.EvalSettings.from_profile(settings.profile, seed=seed, splits=SPLITS, paths=("lor", "dtr", "auto"),
                                    baselines=BASELINES if run == BASELINE_RUN else (), **settings.eval)
    E.evaluate({run: str(model)}, data_dir, out, s, progress=False, overwrite=True)


def run_study(settings: StudySettings, out: str | Path, results: str | Path | None = None,
              log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every unfinished unit of the study into `out`, then write the rows of each seed into
    `results` (default `{out}/results`); returns all rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / "study_settings.json", asdict(settings))
    for unit in plan(settings, out):
        if unit.done():
            io.append_jsonl(out / LOG_FILE, [{"unit": unit.key, "status": "skipped (finished)"}])
            continue
        log(f"study: {unit.key}")
        t0 = time.time()
        unit.run()
        io.append_jsonl(out / LOG_FILE, [{"unit": unit.key, "status": "done", "seconds": round(time.time() - t0, 1)}])
    results = Path(results) if results else out / "results"
    rows = []
    for seed in settings.seeds:
        seed_rows = collect(out / f"seed{seed}", seed)
        io.write_json(results / f"seed{seed}.json", seed_rows)
        rows += seed_rows
    return rows


# ----------------------------------------------------------------------------- rows


def _row(claim: str, run: str, seed: int, model: str, path: str, split: str, category: str, metric: str,
         value: Any) -> dict[str, Any]:
    return {"claim": claim, "run": run, "seed": seed, "model": model, "path": path, "split": split,
            "category": category, "metric": metric, "value": value}


def collect(seed_dir: str | Path, seed: int) -> list[dict[str, Any]]:
    """The flat rows of one seed's finished units: evaluation metrics per run, path, split and
    category; RL stability from the training logs; paired tests of `PAIRS`."""
    from workbench.eval import metrics

    seed_dir = Path(seed_dir)
    rows: list[dict[str, Any]] = []
    for name in RL_RUNS:
        file = seed_dir / "eval" / name / metrics.METRICS_FILE
        if not file.is_file():
            continue
        for m in metrics.read_metrics(file):
            run = "baselines" if m["model"] in BASELINES else name
            for claim in RUN_CLAIMS[run]:
                rows += [_row(claim, run, seed, m["model"], m["path"], m["split"], m["category"], k, m[k])
                         for k in METRICS if m.get(k) is not None]
    for name in RL_RUNS:
        history = seed_dir / "grpo" / name / "log_history.json"
        if not history.is_file():
            continue
        steps = [h for h in json.loads(history.read_text()) if "reward" in h]
        if not steps:
            continue
        rewards = [h["reward"] for h in steps]
        tail = rewards[-max(1, len(rewards) // 10):]
        stats = {"reward_final": statistics.fmean(tail), "reward_step_sd": statistics.pstdev(rewards),
                 "kl_mean": statistics.fmean(h.get("kl", 0.0) for h in steps),
                 "kept_groups": statistics.fmean(h.get("dynamic_sampling/kept_group_fraction", 1.0) for h in steps)}
        for claim in RUN_CLAIMS[name]:
            rows += [_row(claim, name, seed, name, "train", "train", "all", k, v) for k, v in stats.items()]
    read: dict[Path, list[dict[str, Any]]] = {}

    def predictions(file: Path) -> list[dict[str, Any]]:  # `joint` is in several pairs: read it once
        if file not in read:
            read[file] = metrics.read_predictions(file)
        return read[file]

    for claim, a, b, path in PAIRS:
        pa, pb = (seed_dir / "eval" / r / metrics.PREDICTIONS_FILE for r in (a, b))
        if not (pa.is_file() and pb.is_file()):
            continue
        right = {r: {(p["id"], p["split"]): bool(p["correct"]) for p in predictions(f)
                    if p["path"] == path and p["model"] == r}
                 for r, f in ((a, pa), (b, pb))}
        for split in SPLITS:
            keys = sorted(k for k in right[a] if k[1] == split and k in right[b])
            fixed = sum(right[a][k] and not right[b][k] for k in keys)
            broken = sum(right[b][k] and not right[a][k] for k in keys)
            run = f"{a} vs {b}"
            rows += [_row(claim, run, seed, run, path, split, "all", k, v) for k, v in
                     (("a_right_b_wrong", fixed), ("b_right_a_wrong", broken), ("questions", len(keys)),
                      ("mcnemar_p", metrics.mcnemar_p(fixed, broken)))]
    return rows


def read_rows(results: str | Path) -> list[dict[str, Any]]:
    """Every row of a results folder (`seed*.json`), in file order."""
    files = sorted(Path(results).glob("seed*.json"))
    if not files:
        raise FileNotFoundError(f"no seed*.json result files in {str(results)!r}")
    return [row for f in files for row in json.loads(f.read_text(encoding="utf-8"))]


# ----------------------------------------------------------------------------- the page


def _stat(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f} (1 seed)"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f} ({len(values)} seeds)"


def _values(rows: Iterable[Mapping[str, Any]], **where: Any) -> list[float]:
    return [float(r["value"]) for r in rows if all(r[k] == v for k, v in where.items())]


def _difference(rows, a: dict, b: dict) -> tuple[list[float], int]:
    """Per-seed differences A - B of one metric; and how many seeds have both."""
    seeds = sorted({r["seed"] for r in rows})
    diffs = []
    for s in seeds:
        va, vb = _values(rows, seed=s, **a), _values(rows, seed=s, **b)
        if va and vb:
            diffs.append(va[0] - vb[0])
    return diffs, len(diffs)


def _verdict(diffs: Sequence[float], better: str, p_values: Sequence[float] = ()) -> str:
    if not diffs:
        return "not measured"
    wins = sum(d > 0 if better == "higher" else d < 0 for d in diffs)
    mean = statistics.fmean(diffs)
    sure = p_values and all(p < 0.05 for p in p_values)
    if wins == len(diffs) and (sure or not p_values):
        word = "reproduced"
    elif (mean > 0) == (better == "higher") and wins * 2 > len(diffs):
        word = "partly reproduced"
    else:
        word = "not reproduced"
    return f"{word}: the difference is {mean:+.3f} on average, in the claimed direction in {wins} of {len(diffs)} seeds"


def _where(run: str, metric: str, path: str | None = None, split: str = "test", model: str = "") -> dict[str, str]:
    """A row filter of `COMPARISONS`: one run's model (`model`: another model of that run, e.g. a
    baseline) on one metric; with `path`, its overall figure on that path and split."""
    where = {"run": run, "model": model or run, "metric": metric}
    return where if path is None else {**where, "path": path, "split": split, "category": "all"}


COMPARISONS: dict[str, list[tuple[str, dict, dict, str]]] = {
    "1": [("DTR - LOR, number MRA on region categories (test)",
           _where("joint", "number_mra", "dtr"), _where("joint", "number_mra", "lor"), "higher")],
    "2": [("joint - LOR-only RL, choice accuracy on LOR (test)",
           _where("joint", "choice_accuracy", "lor"), _where("lor_only", "choice_accuracy", "lor"), "higher"),
          ("joint - DTR-only RL, choice accuracy on DTR (test)",
           _where("joint", "choice_accuracy", "dtr"), _where("dtr_only", "choice_accuracy", "dtr"), "higher")],
    "3": [("blend - CoT-only cold start, choice accuracy on auto (test)",
           _where("joint", "choice_accuracy", "auto"), _where("cot_only", "choice_accuracy", "auto"), "higher"),
          ("blend - CoT-only cold start, spread of the RL reward over steps",
           _where("joint", "reward_step_sd"), _where("cot_only", "reward_step_sd"), "lower")],
    "4": [("test_ood - test, choice accuracy on auto (joint)",
           _where("joint", "choice_accuracy", "auto", "test_ood"), _where("joint", "choice_accuracy", "auto"),
           "higher"),
          ("DTR-only RL asked on LOR - chance, choice accuracy (test)",
           _where("dtr_only", "choice_accuracy", "lor"), _where("baselines", "choice_accuracy", "lor", model="chance"),
           "higher")],
    "detect": [("with - without the detection reward, DTR center error in m (test)",
                _where("joint", "center_error_m", "dtr"), _where("no_detect", "center_error_m", "dtr"), "lower")],
}
"""Per claim: (what, row filter A, row filter B, which way the claim says A - B goes)."""


def _in_table(claim: str, r: Mapping[str, Any]) -> bool:
    """The rows a claim's table shows: every run's overall figures on the paths it is about, next
    to chance and the blank image (`language_prior`) on `auto`; `test_ood` only for claim 4."""
    if r["category"] != "all" or (r["split"] == "test_ood" and claim != "4"):
        return False
    if r["run"] == "baselines":
        return r["model"] in ("chance", "language_prior") and r["path"] == "auto" and r["metric"] != "center_error_m"
    if " vs " in r["run"]:
        return False
    if r["path"] == "train":
        return claim == "3"
    return r["metric"] in ("choice_accuracy", "number_mra") or (r["metric"] == "center_error_m" and r["path"] == "dtr")


def page(rows: Sequence[Mapping[str, Any]], title: str = "The paper's claims in miniature") -> str:
    """The Markdown results page of `rows` (`collect`): deterministic for the same rows."""
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"# {title}", "", "Regenerate:", "", "```bash",
             "workbench study claims --preset default --seeds " + ",".join(map(str, seeds)) + " --out runs/claims "
             "--results results/claims", "workbench study page --results results/claims --out docs/RESULTS.md", "```", "",
             f"Seeds: {', '.join(map(str, seeds))}. Mean ± standard deviation over seeds; paired tests are exact "
             "McNemar tests on the same questions, per seed.", ""]
    for claim, text in CLAIMS.items():
        mine = [r for r in rows if r["claim"] == claim]
        lines += [f"## Claim {claim}: {text}", ""]
        for what, a, b, better in COMPARISONS[claim]:
            diffs, n = _difference(mine, a, b)
            pair = [p for p in PAIRS if p[0] == claim and p[1] == a.get("run") and p[2] == b.get("run")
                    and p[3] == a.get("path") and a.get("metric") == "choice_accuracy"]
            p_values = []
            if pair:
                p_values = _values(mine, run=f"{pair[0][1]} vs {pair[0][2]}", path=pair[0][3],
                                   split=a.get("split", "test"), metric="mcnemar_p")
            lines += [f"- **{what}**: A {_stat(_values(mine, **a))}, B {_stat(_values(mine, **b))}; "
                      + _verdict(diffs, better, p_values)
                      + (f"; McNemar p per seed: {', '.join(f'{p:.3g}' for p in p_values)}" if p_values else "") + "."]
        table = {}
        for r in mine:
            if _in_table(claim, r):
                table.setdefault((r["run"], r["model"], r["path"], r["split"], r["metric"]), []).append(float(r["value"]))
        if table:
            lines += ["", "| run | model | path | split | metric | value |", "| --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {k[4]} | {_stat(v)} |" for k, v in sorted(table.items())]
        if claim == "1":
            lines += ["", "Per category, the joint model on `test`:", "",
                      "| category | metric | LOR | DTR |", "| --- | --- | --- | --- |"]
            cells: dict[tuple[str, str], dict[str, list[float]]] = {}
            for r in mine:
                if (r["run"], r["model"], r["split"]) == ("joint", "joint", "test") and r["category"] != "all" \
                        and r["path"] in ("lor", "dtr") and r["metric"] in ("choice_accuracy", "number_mra"):
                    cells.setdefault((r["category"], r["metric"]), {}).setdefault(r["path"], []).append(float(r["value"]))
            lines += [f"| {c} | {m} | {_stat(v.get('lor', []))} | {_stat(v.get('dtr', []))} |"
                      for (c, m), v in sorted(cells.items())]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    claims = sub.add_parser("claims", help="run (or resume) the claims study")
    claims.add_argument("--preset", default="smoke", help="smoke | default")
    claims.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    claims.add_argument("--out", required=True, help="study folder (models, evaluations, log)")
    claims.add_argument("--results", default=None, help="folder of the result rows (default: OUT/results)")
    pg = sub.add_parser("page", help="write the results page from result rows")
    pg.add_argument("--results", required=True, help="folder of seed*.json result rows")
    pg.add_argument("--out", required=True, help="Markdown file to write")


def cli(args: argparse.Namespace) -> int:
    if args.action == "claims":
        try:
            seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
        except ValueError:
            raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
        settings = StudySettings.from_preset(args.preset, seeds=seeds)
        rows = run_study(settings, args.out, args.results)
        print(f"study: {len(rows)} rows in {args.results or Path(args.out) / 'results'}")
        return 0
    text = page(read_rows(args.results))
    io.write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0
