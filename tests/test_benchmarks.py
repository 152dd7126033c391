"""Public benchmarks (issue #25): loaders on fixtures in each benchmark's schema, their errors, the
official scoring rules against tables of cases, and `workbench bench` end to end. No download."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench import cli
from workbench.dataset import benchmarks
from workbench.dataset.benchmarks import common, fixtures
from workbench.eval import metrics, official
from workbench.tasks import prompts, rewards


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_fixtures")
    return {name: benchmarks.write_fixture(name, root / name) for name in benchmarks.NAMES}


# ----------------------------------------------------------------------------- loaders


EXPECTED = {  # categories of each fixture, and the path the paper's rule gives
    "spar": (
        {
            "obj_spatial_relation_oo",
            "distance_prediction_oo",
            "depth_prediction_oc_mv",
            "position_matching",
            "view_change_infer",
        },
        "lor",
    ),
    "cvbench": ({"Relation", "Count", "Depth"}, "lor"),
    "sat": ({"ego_movement", "perspective"}, "lor"),
    "embspatial": ({"left", "right", "close"}, "lor"),
    "spatialrgpt": ({"left_predicate", "distance_data"}, "dtr"),
}


@pytest.mark.parametrize("name", benchmarks.NAMES)
def test_each_loader_turns_its_fixture_into_rows(name, sources):
    items = benchmarks.load(name, sources[name])
    categories, path = EXPECTED[name]
    assert {it["category"] for it in items} == categories
    for item in items:
        row = benchmarks.model_row(item, image_size=112)
        assert max(row["image"].size) == 112
        assert prompts.resolve_path(row, "auto") == path
        assert row["question"].count("<region>") == len(row["regions"])
        if row["answer_type"] == "choice":
            n = len(row["choices"]) or 4
            assert row["answer"] in common.LETTERS[:n], row
        elif row["answer_type"] == "number":
            assert float(row["answer"]) >= 0
        messages = prompts.to_messages(row, "auto", region_coords=True)
        images = [part for part in messages[1]["content"] if part["type"] == "image"]
        assert len(images) == len(row["images"] or [row["image"]])


def test_fixture_answers_are_the_truth_of_the_drawn_picture(sources):
    # CV-Bench fixture: the Count answers count the squares drawn; Relation names the one further left.
    items = benchmarks.load("cvbench", sources["cvbench"])
    for item in items:
        if item["category"] == "Count":
            img = np.asarray(item["images"][0]).astype(int)
            colored = np.abs(img - 150).max(axis=2) > 30
            n_colors = len({tuple(c) for c in img[colored].tolist()})
            assert item["choices"]["ABCD".index(item["answer"])] == str(n_colors)


def test_variants_limits_and_circular(sources):
    plain = benchmarks.load("embspatial", sources["embspatial"])
    regions = benchmarks.load("embspatial", sources["embspatial"], variant="regions")
    assert all(not it["regions"] for it in plain)
    assert all(len(it["regions"]) == 2 and "Relevant objects:" in it["question"] for it in regions)
    assert {prompts.resolve_path(benchmarks.model_row(it, 112), "auto") for it in regions} == {"dtr"}
    # a sample covers every category
    assert {it["category"] for it in benchmarks.load("spar", sources["spar"], limit=5)} == EXPECTED["spar"][0]
    sat = benchmarks.load("sat", sources["sat"], circular=True)
    assert len(sat) == 2 * len(benchmarks.load("sat", sources["sat"]))
    first, second = sat[0], sat[1]
    assert second["choices"] == first["choices"][::-1]
    right = first["choices"]["AB".index(first["answer"])]
    assert second["choices"]["AB".index(second["answer"])] == right
    # the SAT shuffle is fixed by the seed and the item's position, not by the sample taken
    sample = benchmarks.load("sat", sources["sat"], limit=2)
    whole = {it["id"]: it["choices"] for it in benchmarks.load("sat", sources["sat"])}
    assert all(whole[it["id"]] == it["choices"] for it in sample)


def test_spar_region_prompt_file(sources, tmp_path):
    items = benchmarks.load("spar", sources["spar"])
    single = next(it for it in items if len(it["images"]) == 1)
    rid = single["id"].split("/")[1]
    prompt = {
        "id": rid,
        "question_region": "Is the chair (red bbox <mask>) left of the desk (blue bbox <mask>)?\nA. left\nB. right",
        "bbox": [[2, 3, 20, 30], [40, 10, 60, 40]],
    }
    f = tmp_path / "sparbench_region_prompts.json"
    f.write_text(json.dumps([prompt]))
    with_regions = benchmarks.load("spar", sources["spar"], variant="regions", regions_file=f)
    item = next(it for it in with_regions if it["id"] == single["id"])
    assert [r["label"] for r in item["regions"]] == ["red box", "blue box"]
    assert item["choices"] == ["left", "right"] and item["question"].count("<region>") == 2
    with pytest.raises(benchmarks.BenchmarkError, match="region prompt file"):
        benchmarks.load("spar", sources["spar"], variant="regions")


def _records(name, sources):
    return common.read_records(
        sources[name], benchmarks.MODULES[name].HUB, benchmarks.MODULES[name].SPLIT, name
    )


@pytest.mark.parametrize(
    "name, breaks, message",
    [
        ("cvbench", lambda r: r.pop("choices"), r"lacks the column\(s\) \['choices'\]"),
        ("cvbench", lambda r: r.update(answer="(E)"), r"answer '\(E\)' is not one of the options"),
        ("sat", lambda r: r.update(correct_answer="up"), "correct_answer 'up' is not one of the answers"),
        ("embspatial", lambda r: r.update(answer=7), "answer 7 is not one of the 4 options"),
        ("embspatial", lambda r: r.update(image="bm90IGFuIGltYWdl"), "not an image PIL can read"),
        ("spar", lambda r: r.update(task="fly_away"), "unknown task 'fly_away'"),
        ("spar", lambda r: r.update(answer="Q"), "answer .Q. is not an option letter"),
        ("spar", lambda r: r.update(answer="AB"), "answer .AB. is not an option letter"),
        (
            "spatialrgpt",
            lambda r: r["rle"].__setitem__(0, fixtures.rle_of(np.ones((10, 10), bool))),
            r"region mask 0 is 10x10, the image is 96x72",
        ),
        ("spatialrgpt", lambda r: r["rle"][1].update(counts=[5, 3]), "RLE counts cover 8 pixels"),
        ("spatialrgpt", lambda r: r["qa_info"].update(type="vibes"), "qa_info.type 'vibes'"),
    ],
)
def test_a_malformed_record_gets_an_error_naming_it(name, breaks, message, sources, tmp_path):
    records = _records(name, sources)
    breaks(records[0])
    module = benchmarks.MODULES[name]
    if name == "spatialrgpt":
        items = module.items(records, image_root=sources[name].parent)
    else:
        items = module.items(records)
    with pytest.raises(benchmarks.BenchmarkError, match=message):
        list(items)


def test_sources_that_cannot_be_read(tmp_path):
    with pytest.raises(benchmarks.BenchmarkError, match="pass the folder or file with --data"):
        benchmarks.load("cvbench")  # the hub, and no network in tests
    with pytest.raises(FileNotFoundError, match="no file or folder"):
        benchmarks.load("cvbench", tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(benchmarks.BenchmarkError, match="holds no dataset"):
        benchmarks.load("cvbench", tmp_path / "empty")
    bad = tmp_path / "bench.json"
    bad.write_text("{not json")
    with pytest.raises(benchmarks.BenchmarkError, match="is not valid JSON"):
        benchmarks.load("embspatial", bad)
    with pytest.raises(benchmarks.BenchmarkError, match="unknown benchmark 'mmlu'"):
        benchmarks.load("mmlu", bad)


def test_rle_masks_both_encodings():
    mask = np.zeros((5, 4), dtype=bool)
    mask[1:3, 2:4] = True
    assert (common.decode_rle(fixtures.rle_of(mask), "m") == mask).all()
    # COCO's compressed string of the same mask: runs [11, 2, 3, 2, 2] (column-major), the third and
    # later runs stored as differences to the run two before, 5 bits a character offset by 48
    assert (common.decode_rle({"size": [5, 4], "counts": ";230O"}, "m") == mask).all()
    assert common.mask_box(mask, "m") == [2, 1, 4, 3]


@pytest.mark.parametrize(
    "text, metres",
    [
        ("It is 1.5 meters away.", 1.5),
        ("about 20 cm", 0.2),
        ("5 feet 3 inches", 1.6002),
        ("3 ft", 0.9144),
        ("12 inches", 0.3048),
        ("0.72", 0.72),
        ("Region [0] is 2 m from Region [1]", 2.0),
        ("no idea", None),
    ],
)
def test_lengths_in_text(text, metres):
    assert common.metres_in(text) == (None if metres is None else pytest.approx(metres))


# ----------------------------------------------------------------------------- official rules


def pred(bench, category, completion, official_answer, answer=None, answer_type="choice", group=None):
    return {
        "benchmark": bench,
        "category": category,
        "completion": completion,
        "official_answer": official_answer,
        "answer": answer if answer is not None else official_answer,
        "answer_type": answer_type,
        "group": group or {},
        "id": "x",
    }


@pytest.mark.parametrize(
    "completion, official_score, srreal_score",
    [
        ("<think>t</think><answer>B</answer>", 0.0, 1.0),  # the official harness reads the raw reply
        ("B", 1.0, 1.0),
        ("B. the desk", 1.0, 1.0),  # starts with the letter
        ("b) the desk", 1.0, 1.0),
        ("<answer> B</answer>", 0.0, 0.0),  # the span is not stripped: " b" starts with a space
        ("(B)", 0.0, 0.0),
        ("The answer is B", 0.0, 0.0),
        ("", 1.0, 1.0),  # "" is a substring of any gold: the official code's quirk
    ],
)
def test_spar_choice_rules(completion, official_score, srreal_score):
    scores = official.score(pred("spar", "obj_spatial_relation_oo", completion, "B"))
    assert scores == {"official": official_score, "sr-real": srreal_score}


@pytest.mark.parametrize(
    "completion, task, gold, score",
    [
        ("1.05", "distance_prediction_oo", "1.0", 1.0),  # error 0.05 <= 1 - 0.95: `<=` at the threshold
        ("1.5", "distance_prediction_oo", "1.0", 0.1),
        ("-2.0", "distance_prediction_oo", "2.0", 1.0),  # no sign read
        ("about 2 or 9", "distance_prediction_oo", "2.0", 1.0),  # single view: the first number
        ("about 2 or 9", "depth_prediction_oc_mv", "9.0", 1.0),  # multi-view: the last
        ("none", "distance_prediction_oo", "2.0", 0.0),
        ("0.3", "distance_prediction_oo", "0", 0.5),  # gold 0: the absolute error
        ("move_right:0.4,rotate_right:60", "view_change_infer", "move_right:0.4,rotate_right:60", 1.0),
        (
            "move_right:0.8",
            "view_change_infer",
            "move_right:0.4",
            0.82,
        ),  # right: |0.4 - 0.8| / 0.8 -> 0.1; 4 axes at 0 -> 1
    ],
)
def test_spar_numbers_and_camera_moves(completion, task, gold, score):
    assert official.score(pred("spar", task, completion, gold, answer_type="number"))[
        "official"
    ] == pytest.approx(score)


@pytest.mark.parametrize(
    "bench, completion, gold, official_score, srreal_score",
    [
        ("cvbench", "<answer>(C)</answer>", "(C)", 0.0, 1.0),
        ("cvbench", "C) 2", "(C)", 1.0, 0.0),
        ("cvbench", "The answer is (C).", "(C)", 1.0, 0.0),
        ("cvbench", "c.", "(C)", 1.0, 1.0),
        ("cvbench", "cube", "(C)", 1.0, 0.0),  # Cambrian compares the first character only
        ("sat", "<answer>B</answer>", "B", 1.0, 1.0),
        ("sat", "Between A and B, I pick A", "B", 1.0, 0.0),  # the SAT harness: the letter anywhere
        ("sat", "<answer>b</answer>", "B", 0.0, 1.0),
    ],
)
def test_letter_rules(bench, completion, gold, official_score, srreal_score):
    assert official.score(pred(bench, "x", completion, gold)) == {
        "official": official_score,
        "sr-real": srreal_score,
    }


@pytest.mark.parametrize(
    "completion, score",
    [
        ("<answer>C</answer>", 1.0),
        ("<answer>(c) the cup</answer>", 1.0),
        ("<answer>a cup</answer>", 0.0),
        ("the answer is C", 1.0),
        ("<answer>none</answer>", 0.0),
    ],
)
def test_embspatial_first_standalone_letter(completion, score):
    assert official.score(pred("embspatial", "left", completion, "C")) == {"sr-real": score}


@pytest.mark.parametrize(
    "category, completion, gold, answer, score",
    [
        ("distance_data", "<answer>1.2</answer>", "They are 120 centimeters apart.", "1.2", 1.0),
        ("distance_data", "<answer>1.5</answer>", "They are 1.2 meters apart.", "1.2", 1.0),  # 1.25 g: in
        ("distance_data", "<answer>1.51</answer>", "They are 1.2 meters apart.", "1.2", 0.0),
        ("distance_data", "about 4 feet", "They are 1.2 meters apart.", "1.2", 1.0),
        ("direction", "at 2 o'clock", "It is around the 3 o'clock direction.", "", 1.0),
        ("direction", "at 12 o'clock", "It is around the 2 o'clock direction.", "", 0.0),
        ("left_predicate", "<answer>Yes</answer>", "Yes, Region [0] is to the left of Region [1].", "", 1.0),
        ("left_predicate", "<answer>No</answer>", "Yes, Region [0] is to the left of Region [1].", "", 0.0),
        ("tall_choice", "<answer>the blue box</answer>", "Region [1] is taller.", "", 1.0),
    ],
)
def test_spatialrgpt_rules(category, completion, gold, answer, score):
    kind = "number" if category == "distance_data" else "text"
    assert official.score(pred("spatialrgpt", category, completion, gold, answer or gold, kind)) == {
        "official": score
    }


SPEC_VS_OFFICIAL = [  # (benchmark, completion, gold): where the rules part ways, and how
    ("spar", "<think>t</think><answer>B</answer>", "B"),  # SPEC right; official (raw reply) wrong
    ("spar", "B", "B"),  # SPEC wrong (no think / answer tags); official right
    ("spar", "B. the desk", "B"),  # SPEC wrong (no tags); official right
    ("spar", "", "B"),  # SPEC wrong; official right (empty reply)
    ("cvbench", "<think>t</think><answer>C</answer>", "(C)"),  # SPEC right; Cambrian wrong ("<")
    ("sat", "<think>A or B?</think><answer>A</answer>", "B"),  # SPEC wrong; SAT harness right (B appears)
]


def test_official_rules_differ_from_the_spec_reward_exactly_where_listed():
    cases = [
        ("spar", "<think>t</think><answer>B</answer>", "B"),
        ("spar", "B", "B"),
        ("spar", "B. the desk", "B"),
        ("spar", "", "B"),
        ("spar", "<think>t</think><answer>A</answer>", "B"),
        ("cvbench", "<think>t</think><answer>C</answer>", "(C)"),
        ("cvbench", "<think>t</think><answer>A</answer>", "(C)"),
        ("sat", "<think>A or B?</think><answer>A</answer>", "B"),
        ("sat", "<think>t</think><answer>B</answer>", "B"),
    ]
    differ = []
    for bench, completion, gold in cases:
        letter = gold.strip("()")
        strict = rewards.score(completion, letter, None, "lor", "choice")["accuracy"]
        if official.score(pred(bench, "obj_spatial_relation_oo", completion, gold))["official"] != strict:
            differ.append((bench, completion, gold))
    assert differ == SPEC_VS_OFFICIAL


def test_spar_and_cvbench_aggregates_follow_their_code():
    rows = []
    for task, level, n, right in (
        ("depth_prediction_oc", "Low", 4, 4),
        ("distance_prediction_oo", "Low", 1, 0),
        ("position_matching", "Middle", 2, 1),
        ("view_change_infer", "Middle", 2, 0),
        ("obj_spatial_relation_oo", "High", 3, 3),
    ):
        for k in range(n):
            rows.append(
                {
                    "model": "m",
                    "path": "lor",
                    "benchmark": "spar",
                    "category": task,
                    "group": {"level": level, "view": "single_view", "format": "select"},
                    "official_scores": {"official": float(k < right), "sr-real": float(k < right)},
                }
            )
    table = {(r["scheme"], r["group"]): r["score"] for r in official.summarize(rows)}
    assert table[("official", "level=Low")] == pytest.approx((1.0 + 0.0) / 2)  # mean of tasks
    assert table[("sr-real", "level=Low")] == pytest.approx(4 / 5)  # mean of questions
    assert table[("official", "level=Middle")] == pytest.approx(0.5)  # view_change_infer left out
    assert table[("sr-real", "level=Middle")] == pytest.approx(1 / 4)
    assert table[("official", "overall (mean of tasks)")] == pytest.approx((1 + 0 + 0.5 + 0 + 1) / 5)
    rows = [
        {
            "model": "m",
            "path": "lor",
            "benchmark": "cvbench",
            "category": "t",
            "group": {"source": s},
            "official_scores": {"official": x, "sr-real": x},
        }
        for s, xs in (("ADE20K", [1, 1]), ("COCO", [0, 0, 0, 0]), ("Omni3D", [1, 0]))
        for x in xs
    ]
    table = {(r["scheme"], r["group"]): r["score"] for r in official.summarize(rows)}
    assert table[("official", "overall ((2D + 3D) / 2)")] == pytest.approx(((1 + 0) / 2 + 0.5) / 2)
    assert table[("sr-real", "overall (mean of questions)")] == pytest.approx(3 / 8)


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("name", benchmarks.NAMES)
def test_workbench_bench_on_each_fixture(name, sources, tmp_path):
    from workbench.widgets.results_table import results_table
    from workbench.widgets.trace_browser import trace_browser

    out = tmp_path / "bench"
    args = [
        "bench",
        "--model",
        "shipped",
        "--benchmark",
        name,
        "--data",
        str(sources[name]),
        "--out",
        str(out),
        "--max-new-tokens",
        "48",
        "--no-progress",
    ]
    if name == "embspatial":
        args += ["--variant", "regions"]
    assert cli.main(args) == 0
    preds = metrics.read_predictions(out)
    assert {p["split"] for p in preds} == {name} and all(p["official_scores"] for p in preds)
    summary = json.loads((out / official.SUMMARY_FILE).read_text())
    assert any("overall" in r["group"] for r in summary)
    # what `workbench eval --rescore` and the widgets read
    assert metrics.rescore(preds) == metrics.read_metrics(out)
    again = tmp_path / "again"
    assert cli.main(["eval", "--rescore", str(out), "--out", str(again), "--scorer", "benchmark"]) == 0
    assert json.loads((again / official.SUMMARY_FILE).read_text()) == summary
    results_table(out / "metrics.json")
    rows = [
        benchmarks.model_row(it, 112)
        for it in benchmarks.load(name, sources[name], variant="regions" if name == "embspatial" else "plain")
    ]
    browser = trace_browser(rows, preds, show_3d=False)
    assert browser.matching()
    # an existing evaluation is not overwritten
    assert cli.main(args) == 2


def test_a_pretrained_vlm_is_one_parameter_away(sources, tmp_path):
    """A plain Qwen2.5-VL checkpoint (tiny, random) on the region version of EmbSpatial."""
    from tests.tiny_vlm import plain_checkpoint
    from workbench.eval import bench

    path = tmp_path / "qwen"
    plain_checkpoint(path, ["Which object is further left?", "<think> </think> <answer> A B C D </answer>"])
    settings = bench.BenchSettings(
        benchmark="embspatial",
        data=str(sources["embspatial"]),
        variant="regions",
        limit=3,
        max_new_tokens=6,
        image_size=112,
    )
    result = bench.run_benchmark(str(path), settings, tmp_path / "out", progress=False)
    assert len(result["predictions"]) == 3 and {p["resolved_path"] for p in result["predictions"]} == {"dtr"}


# ----------------------------------------------------------------------------- review cases


def test_sat_options_follow_the_papers_eight_workers(sources):
    """The paper's run: worker r of 8 seeds Python's random with 42 once and shuffles records r, r + 8, ...
    in turn (its eval_sat.py under eval.sh's torchrun)."""
    import random

    from workbench.dataset.benchmarks import sat

    records = [{"answers": [f"a{k}", f"b{k}", f"c{k}"]} for k in range(20)]
    sat.paper_orders(records)
    for rank in (0, 3):
        random.seed(42)  # the global generator, as the paper's script uses it
        for k in range(rank, 20, 8):
            expected = [f"a{k}", f"b{k}", f"c{k}"]
            random.shuffle(expected)
            assert records[k][sat.ORDER] == expected
    # a sample keeps each question's order of the whole run
    whole = {it["id"]: it["choices"] for it in benchmarks.load("sat", sources["sat"])}
    assert all(whole[it["id"]] == it["choices"] for it in benchmarks.load("sat", sources["sat"], limit=3))


def test_hub_snapshot_folders_and_python_literals(sources, tmp_path):
    import shutil

    from datasets import load_dataset

    folder = tmp_path / "cv"
    shutil.copytree(sources["cvbench"], folder)
    rows = load_dataset("parquet", data_files=str(folder / "test.parquet"), split="train")
    rows.remove_columns(["image"]).to_json(str(folder / "test.jsonl"))  # the snapshot's second copy
    assert len(benchmarks.load("cvbench", folder)) == len(benchmarks.load("cvbench", sources["cvbench"]))
    assert common.parse_literal("{'type': 'qualitative', 'category': 'left_predicate'}") == {
        "type": "qualitative", "category": "left_predicate"}


def test_embspatial_region_boxes_like_the_paper(sources, tmp_path):
    records = json.loads(sources["embspatial"].read_text())
    records[0]["objects"][0]["bbox"][3] = 500  # runs past the bottom edge: the paper uses it (cut here)
    f = tmp_path / "embspatial_bench.json"
    f.write_text(json.dumps(records))
    item = benchmarks.load("embspatial", f, variant="regions")[0]
    assert item["regions"][0]["bbox_2d"][3] == item["images"][0].height
    for r in records:
        r.pop("objects")
    f.write_text(json.dumps(records))
    with pytest.raises(benchmarks.BenchmarkError, match="needs the records' 'objects'"):
        benchmarks.load("embspatial", f, variant="regions")


@pytest.mark.parametrize("text, metres", [("between 1 m and 2 m", 1.0), ("1 m, 2 m", 1.0), ("6 feet and 2 inches", 1.8796)])
def test_a_range_is_not_a_sum(text, metres):
    assert common.metres_in(text) == pytest.approx(metres)


@pytest.mark.parametrize("gold, completion, score", [
    ("Actually, Region [0] is below Region [1].", "<answer>No</answer>", 1.0),
    ("Actually, Region [0] is below Region [1].", "<answer>Yes</answer>", 0.0),
    ("That is True.", "<answer>yes</answer>", 1.0),
    ("That is False.", "<answer>That is false.</answer>", 1.0),
])
def test_spatialrgpt_polarity_of_the_benchmarks_own_answers(gold, completion, score):
    assert official.score(pred("spatialrgpt", "above_predicate", completion, gold, gold, "text")) == {"official": score}


def test_spar_multi_view_reply_without_a_number_reads_minus_one():
    # the official code: -1 for `_mv` tasks, so a gold near 1 (|−1 − 1| / 1 = 2) scores 0, a gold of -1 ... cannot occur
    assert official.score(pred("spar", "depth_prediction_oc_mv", "no idea", "0.2", answer_type="number"))["official"] == 0
    assert official.spar_number("no idea", last=True) is None


def test_text_answers_are_asked_for_in_their_form(sources):
    for item in benchmarks.load("spatialrgpt", sources["spatialrgpt"]):
        if item["answer_type"] == "text":
            assert item["question"].endswith("Answer yes or no.")
    vci = [it for it in benchmarks.load("spar", sources["spar"]) if it["category"] == "view_change_infer"]
    assert vci and all("move_right:0.4" in it["question"] for it in vci)


def test_spatialrgpt_and_sat_tables():
    rows = []
    for cat, kind, x, answer, completion in (
        ("tall_predicate", "qualitative", 1.0, "", ""), ("short_choice", "qualitative", 0.0, "", ""),
        ("left_predicate", "qualitative", 1.0, "", ""), ("distance_data", "quantitative", 1.0, "2.0", "<answer>2.2</answer>"),
        ("distance_data", "quantitative", 0.0, "2.0", "<answer>4</answer>"),
    ):
        rows.append({"model": "m", "path": "dtr", "benchmark": "spatialrgpt", "category": cat, "group": {"type": kind},
                     "answer": answer, "completion": completion, "id": cat, "official_scores": {"official": x}})
    table = {r["group"]: r["score"] for r in official.summarize(rows)}
    assert table["qualitative tall/short"] == 0.5 and table["qualitative left/right"] == 1.0
    assert table["qualitative overall"] == pytest.approx(2 / 3) and table["quantitative overall"] == 0.5
    assert table["abs_rel_error=distance_data"] == pytest.approx((0.1 + 1.0) / 2)
    assert not any(g.startswith("overall") for g in table)  # no mixed figure without an official counterpart
    sat_rows = [{"model": "m", "path": "lor", "benchmark": "sat", "category": "x", "group": {}, "id": f"sat/{k}",
                 "official_scores": {"official": 1.0, "sr-real": 1.0}} for k in range(2)]
    groups = [r["group"] for r in official.summarize(sat_rows) if r["scheme"] == "official"]
    assert any("needs --circular" in g for g in groups)
