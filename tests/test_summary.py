"""Leaderboard tables from result trees, checked against means computed by hand; provenance from manifests."""

import hashlib
import json

import fixture_data as fd
import pandas as pd
import pytest

from qzhou_eval.cli import main
from qzhou_eval.config import EvalConfig
from qzhou_eval.evaluate.runner import run
from qzhou_eval.provenance import fingerprint
from qzhou_eval.recipe.benchmarks import benchmark_tasks
from qzhou_eval.report.summary import load_tree, merge_cells, summary_table, task_scores
from qzhou_eval.store.manifest import MANIFEST_NAME

ENG, CMN = "MTEB(eng, v2)", "MTEB(cmn, v1)"
TYPE_VALUE = {
    "Classification": 0.80,
    "Clustering": 0.50,
    "PairClassification": 0.90,
    "Reranking": 0.60,
    "Retrieval": 0.40,
    "STS": 0.85,
    "Summarization": 0.30,
}


def write_result(root, model, revision, task, scores):
    folder = root / model.replace("/", "__") / revision
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{task}.json").write_text(
        json.dumps(
            {
                "dataset_revision": "x",
                "task_name": task,
                "mteb_version": "1.38.30",
                "evaluation_time": 1.0,
                "kg_co2_emissions": None,
                "scores": {
                    split: [{"hf_subset": sub, "main_score": v, "languages": []} for sub, v in cells.items()]
                    for split, cells in scores.items()
                },
            }
        )
    )
    (folder / "model_meta.json").write_text(json.dumps({"name": model, "revision": revision}))


def eng_tree(root, model="org/a", revision="r1", skip=(), shift=None):
    """Every English task at its type's value, except the subset-selection traps below."""
    for name, spec in benchmark_tasks(ENG).items():
        if name in skip:
            continue
        v = TYPE_VALUE[spec.type] + (shift[1] if shift and shift[0] == name else 0.0)
        scores = {"test": {"default": v}}
        if name == "STS17":  # only en-en counts
            scores = {"test": {"en-en": v, "ko-ko": 0.0, "ar-ar": 0.1}}
        elif name == "STS22.v2":
            scores = {"test": {"en": v, "de": 0.0}}
        elif name == "AmazonCounterfactualClassification":  # en counts, en-ext and validation do not
            scores = {"test": {"en": v, "en-ext": 0.0, "de": 0.1}, "validation": {"en": 0.0}}
        elif name in ("MTOPDomainClassification", "MassiveIntentClassification", "MassiveScenarioClassification"):
            scores = {"test": {"en": v, "fr": 0.0}, "validation": {"en": 0.0}}
        write_result(root, model, revision, name, scores)


def expected_means(values_by_type: dict[str, list[float]]) -> tuple[float, float]:
    flat = [v for vs in values_by_type.values() for v in vs]
    by_type = [sum(vs) / len(vs) for vs in values_by_type.values()]
    return round(100 * sum(flat) / len(flat), 2), round(100 * sum(by_type) / len(by_type), 2)


def eng_values(shift=None):
    out: dict[str, list[float]] = {}
    for name, spec in benchmark_tasks(ENG).items():
        out.setdefault(spec.type, []).append(TYPE_VALUE[spec.type] + (shift[1] if shift and shift[0] == name else 0))
    return out


def test_english_means_use_only_kept_splits_and_subsets(tmp_path):
    eng_tree(tmp_path, shift=("ArguAna", 0.1))
    row = summary_table(task_scores(load_tree(tmp_path), ENG), ENG).iloc[0]
    mean_task, mean_type = expected_means(eng_values(shift=("ArguAna", 0.1)))
    assert (row.n_tasks, row.n_missing) == (41, 0)
    assert row.mean_task == mean_task and row.mean_task_type == mean_type
    assert row.Retrieval == round(100 * (0.4 * 9 + 0.5) / 10, 2)
    assert row.STS == 85.0 and row.Classification == 80.0


def test_missing_task_empties_both_means_and_its_type_and_is_counted(tmp_path):
    eng_tree(tmp_path, skip=("SummEvalSummarization.v2", "STS12"))
    assert main(["summarize", "--results_dir", str(tmp_path), "--benchmark", ENG, "--output_dir", str(tmp_path)]) == 0
    out = tmp_path / "summary"
    csv = pd.read_csv(out / "summary.csv")
    assert list(csv.columns) == [
        "model",
        "revision",
        "settings",
        "data",
        "benchmark",
        "n_tasks",
        "n_missing",
        "mean_task",
        "mean_task_type",
        "Classification",
        "Clustering",
        "PairClassification",
        "Reranking",
        "Retrieval",
        "STS",
        "Summarization",
    ]
    row = csv.iloc[0]
    assert row.n_missing == 2 and row.n_tasks == 39
    assert pd.isna(row.mean_task) and pd.isna(row.mean_task_type)
    assert pd.isna(row.STS) and pd.isna(row.Summarization) and row.Retrieval == 40.0
    md = (out / "summary.md").read_text()
    assert "## Missing tasks" in md and "STS12" in md.split("## Missing tasks")[1]
    per_task = pd.read_csv(out / "per_task.csv")
    assert list(per_task.columns) == [
        "model", "revision", "settings", "task", "task_type", "data", "score", "ci_low", "ci_high",
    ]  # fmt: skip
    assert per_task[["ci_low", "ci_high"]].isna().all().all()  # no records in this tree: no interval
    assert set(per_task["settings"]) == {"unknown"}  # no manifests in this tree
    assert pd.isna(per_task.set_index("task").loc["STS12", "score"])


def cmn_tree(root, model="org/c", revision="r1"):
    for name, spec in benchmark_tasks(CMN).items():
        v = TYPE_VALUE[spec.type]
        if name == "MultilingualSentiment":
            scores = {"validation": {"default": 0.6}, "test": {"default": 0.8}}
        elif name in ("ATEC", "BQ", "STSB"):  # the benchmark keeps test only
            scores = {"validation": {"default": 0.0}, "test": {"default": v}}
        else:
            scores = {split: {"default": v} for split in spec.splits}
        write_result(root, model, revision, name, scores)


@pytest.mark.parametrize("rule,sentiment", [("last", 0.6), ("validation", 0.6), ("mean", 0.7)])
def test_duplicated_multilingual_sentiment_rule(tmp_path, rule, sentiment):
    cmn_tree(tmp_path)
    per_task = task_scores(load_tree(tmp_path), CMN, rule)
    assert per_task.set_index("task").loc["MultilingualSentiment", "score"] == pytest.approx(sentiment)
    assert len(per_task) == 31
    values: dict[str, list[float]] = {}
    for name, spec in benchmark_tasks(CMN).items():
        values.setdefault(spec.type, []).append(sentiment if name == "MultilingualSentiment" else TYPE_VALUE[spec.type])
    row = summary_table(per_task, CMN).iloc[0]
    assert (row.mean_task, row.mean_task_type) == expected_means(values)
    assert "Summarization" not in row.index


def test_models_and_revisions_side_by_side(tmp_path):
    eng_tree(tmp_path, "org/a", "r1")
    eng_tree(tmp_path, "org/a", "r2", shift=("STS12", 0.05))
    eng_tree(tmp_path, "org/b", "r1", skip=("ArguAna",))
    table = summary_table(task_scores(load_tree(tmp_path), ENG), ENG).set_index(["model", "revision"])
    assert len(table) == 3
    assert table.loc[("org/a", "r2"), "STS"] == round(100 * (0.85 * 8 + 0.90) / 9, 2)
    assert table.loc[("org/a", "r1"), "STS"] == 85.0
    assert table.loc[("org/b", "r1"), "n_missing"] == 1


def published_file(tree_root, path, model="org/a", revision="r1"):
    folder = tree_root / model.replace("/", "__") / revision
    tasks = {}
    for f in folder.glob("*.json"):
        if f.name != "model_meta.json":
            r = json.loads(f.read_text())
            tasks[r["task_name"]] = {
                "scores": {
                    s: [{"hf_subset": e["hf_subset"], "main_score": e["main_score"]} for e in es]
                    for s, es in r["scores"].items()
                }
            }
    path.write_text(json.dumps({"model": model, "model_revision": revision, "source": "test", "tasks": tasks}))
    return path


def test_reference_equal_to_run_gives_zero_deltas(tmp_path):
    eng_tree(tmp_path / "run")
    ref = published_file(tmp_path / "run", tmp_path / "ref.json")
    out = tmp_path / "o"
    assert (
        main(
            [
                "summarize",
                "--results_dir",
                str(tmp_path / "run"),
                "--benchmark",
                ENG,
                "--reference",
                str(ref),
                "--output_dir",
                str(out),
                "--max_delta",
                "0.0",
            ]
        )
        == 0
    )
    deltas = pd.read_csv(out / "summary" / "deltas.csv")
    assert len(deltas) == 41 + 2 and (deltas["delta"] == 0).all()


def test_shifted_task_shows_its_delta_and_fails_the_gate(tmp_path, capsys):
    eng_tree(tmp_path / "ref")
    ref = published_file(tmp_path / "ref", tmp_path / "ref.json")
    eng_tree(tmp_path / "run", shift=("SCIDOCS", 0.01))
    out = tmp_path / "o"
    code = main(
        [
            "summarize",
            "--results_dir",
            str(tmp_path / "run"),
            "--benchmark",
            ENG,
            "--reference",
            str(ref),
            "--output_dir",
            str(out),
            "--max_delta",
            "0.5",
        ]
    )
    assert code == 3
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: |delta| > 0.5 points for: SCIDOCS"
    deltas = pd.read_csv(out / "summary" / "deltas.csv").set_index("item")
    assert deltas.loc["SCIDOCS", "delta"] == 1.0
    assert deltas.loc["mean_task", "delta"] == round(
        round(100 * (sum(v for vs in eng_values(("SCIDOCS", 0.01)).values() for v in vs) / 41), 2)
        - round(100 * sum(v for vs in eng_values().values() for v in vs) / 41, 2),
        2,
    )
    assert "Deltas to org/a@r1" in (out / "summary" / "summary.md").read_text()


def test_plot_is_a_real_png_with_one_group_per_model(tmp_path):
    eng_tree(tmp_path, "org/a", "r1")
    eng_tree(tmp_path, "org/b", "r1", shift=("STS12", -0.3))
    assert main(["summarize", "--results_dir", str(tmp_path), "--benchmark", ENG]) == 0
    png = (tmp_path / "summary" / "summary.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    written = sorted(p.name for p in (tmp_path / "summary").iterdir())
    assert written == ["per_task.csv", "summary.csv", "summary.md", "summary.png"]  # no temp files left


def test_no_results_is_a_user_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["summarize", "--results_dir", str(tmp_path / "empty"), "--benchmark", CMN]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no MTEB(cmn, v1) results found")


QZHOU, QWEN3 = "Kingsoft-LLM/QZhou-Embedding", "Qwen/Qwen3-Embedding-0.6B"
MULTI, CODE = "MTEB(Multilingual, v2)", "MTEB(Code, v1)"


@pytest.fixture(scope="module")
def published_tables(shared_data, tmp_path_factory):
    """The acceptance commands: `summarize` on the shared published tree, once per benchmark, via the CLI."""
    tables = {}
    for bench in (ENG, CMN, MULTI, CODE):
        out = tmp_path_factory.mktemp("published")
        args = ["summarize", "--results_dir", str(shared_data / "published" / "results"), "--benchmark", bench]
        assert main([*args, "--output_dir", str(out)]) == 0
        tables[bench] = (
            pd.read_csv(out / "summary" / "summary.csv").set_index("model"),
            (out / "summary" / "summary.md").read_text(),
        )
    return tables


@pytest.mark.parametrize(
    "model,bench,mean_task,mean_type",
    [(QZHOU, ENG, 75.97, 69.52), (QZHOU, CMN, 76.99, 78.58), (QWEN3, ENG, 70.70, 64.88), (QWEN3, CMN, 66.33, 67.45)],
)
def test_published_trees_give_leaderboard_means(published_tables, model, bench, mean_task, mean_type):
    row = published_tables[bench][0].loc[model]
    assert (row.mean_task, row.mean_task_type, row.n_missing) == (mean_task, mean_type, 0)
    assert (row.settings, row.data) == ("unknown", "unknown")  # foreign trees: no manifest


def test_qwen3_code_benchmark_mean(published_tables):
    table, _ = published_tables[CODE]
    row = table.loc[QWEN3]
    assert (row.mean_task, row.mean_task_type, row.Retrieval, row.n_tasks) == (75.42, 75.42, 75.42, 12)
    assert QZHOU not in table.index  # no Code results: no row, not a row of blanks


def test_qwen3_multilingual_type_columns_and_the_missing_flores(published_tables):
    table, md = published_tables[MULTI]
    row = table.loc[QWEN3]
    assert type_columns_of(table) == [
        "BitextMining",
        "Classification",
        "Clustering",
        "InstructionRetrieval",
        "MultilabelClassification",
        "PairClassification",
        "Reranking",
        "Retrieval",
        "STS",
    ]
    expected = {
        "Classification": 66.83,
        "Clustering": 52.33,
        "InstructionRetrieval": 5.09,
        "MultilabelClassification": 24.59,
        "PairClassification": 80.83,
        "Reranking": 61.41,
        "Retrieval": 64.65,
        "STS": 76.17,
    }
    assert {k: row[k] for k in expected} == expected
    assert pd.isna(row.BitextMining) and pd.isna(row.mean_task) and pd.isna(row.mean_task_type)
    assert (row.n_tasks, row.n_missing) == (130, 1)
    missing = md.split("## Missing tasks")[1]
    assert f"- {QWEN3}@b22da4950478: FloresBitextMining\n" in missing


def type_columns_of(table):
    cols = list(table.columns)
    return cols[cols.index("mean_task_type") + 1 :]


def test_bundled_reference_matches_published_tree(shared_data):
    from qzhou_eval.report.reference import resolve_reference
    from qzhou_eval.report.summary import load_published

    for bench in (ENG, CMN):
        a = task_scores(load_published(resolve_reference("qzhou")), bench)
        b = task_scores(load_tree(shared_data / "published" / "results"), bench)
        b = b[b["model"] == QZHOU]
        assert len(a) == len(b) == len(benchmark_tasks(bench))
        assert a["score"].tolist() == pytest.approx(b["score"].tolist(), abs=1e-9)


# ---------------------------------------------------------------- provenance


def write_manifest(root, model, revision, settings, data_source="hub", drop=()):
    """A manifest as the runner writes it: run settings in the header, per task its settings, data and scores."""
    folder = root / model.replace("/", "__") / revision
    entries = {}
    for path in folder.glob("*.json"):
        if path.name in ("model_meta.json", MANIFEST_NAME) or path.stem in drop:
            continue
        result = json.loads(path.read_text())
        task_settings = {**settings, "data_source": data_source, "data_sha256": "x", "prefixes_sha256": path.stem}
        entries[result["task_name"]] = {
            "status": "done",
            "settings": task_settings,
            "fingerprint": fingerprint(task_settings),
            "data_source": data_source,
            "scores": {f"{s}/{e['hf_subset']}": e["main_score"] for s, es in result["scores"].items() for e in es},
        }
    (folder / MANIFEST_NAME).write_text(json.dumps({"settings": settings, "tasks": entries}))
    return folder


SETTINGS = {"model": "org/a", "revision": "r1", "batch_size": 32, "dtype": "bfloat16", "pooling_mode": "mean"}


def summarize_args(*dirs, bench=ENG, extra=()):
    return ["summarize", "--results_dir", *map(str, dirs), "--benchmark", bench, *extra]


def test_one_model_revision_with_two_settings_is_refused_naming_the_key_unless_allow_mixed(tmp_path, capsys):
    eng_tree(tmp_path / "a")
    write_manifest(tmp_path / "a", "org/a", "r1", SETTINGS)
    eng_tree(tmp_path / "b", shift=("STS12", 0.05))
    write_manifest(tmp_path / "b", "org/a", "r1", {**SETTINGS, "batch_size": 16})
    assert main(summarize_args(tmp_path / "a", tmp_path / "b")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: org/a@r1 has results made with different settings: batch_size (32 / 16).")
    assert "dtype" not in err and "prefixes_sha256" not in err and "--allow_mixed" in err

    assert main(summarize_args(tmp_path / "a", tmp_path / "b", extra=["--allow_mixed"])) == 0
    table = pd.read_csv(tmp_path / "a" / "summary" / "summary.csv").set_index("settings")
    assert len(table) == 2 and set(table["data"]) == {"hub"}
    first, second = fingerprint(SETTINGS), fingerprint({**SETTINGS, "batch_size": 16})
    assert table.loc[first, "STS"] == 85.0 and table.loc[second, "STS"] == round(100 * (0.85 * 8 + 0.90) / 9, 2)
    assert f"org/a@r1 [{second}]" in (tmp_path / "a" / "summary" / "summary.md").read_text()


def test_results_without_a_manifest_record_are_unknown_and_do_not_mix_with_known_ones(tmp_path, capsys):
    eng_tree(tmp_path)
    write_manifest(tmp_path, "org/a", "r1", SETTINGS, drop=("ArguAna",))
    cells = load_tree(tmp_path)
    assert set(cells.loc[cells["task"] == "ArguAna", "settings"]) == {"unknown"}
    assert set(cells.loc[cells["task"] == "STS12", "settings"]) == {fingerprint(SETTINGS)}
    assert main(summarize_args(tmp_path)) == 2
    assert "provenance (no manifest record for some results)" in capsys.readouterr().err


def test_other_benchmarks_results_in_the_same_folder_do_not_block_a_table(tmp_path):
    eng_tree(tmp_path)
    write_result(tmp_path, "org/a", "r1", "TNews", {"validation": {"default": 0.5}})
    folder = write_manifest(tmp_path, "org/a", "r1", SETTINGS)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["tasks"]["TNews"]["settings"]["batch_size"] = 16  # C-MTEB run with another batch size
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert main(summarize_args(tmp_path)) == 0
    row = pd.read_csv(tmp_path / "summary" / "summary.csv").iloc[0]
    assert (row.settings, row.n_tasks) == (fingerprint(SETTINGS), 41)
    assert main(summarize_args(tmp_path, bench=CMN)) == 0
    row = pd.read_csv(tmp_path / "summary" / "summary.csv").iloc[0]
    assert (row.settings, row.n_tasks) == (fingerprint({**SETTINGS, "batch_size": 16}), 1)


def test_a_manifest_record_that_does_not_match_its_file_is_not_trusted(tmp_path):
    """A kill between writing a result and updating the manifest leaves an older record beside a newer file."""
    eng_tree(tmp_path)
    folder = write_manifest(tmp_path, "org/a", "r1", SETTINGS)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["tasks"]["STS12"]["scores"]["test/default"] = 0.11  # an older record, scores only
    manifest["tasks"]["STS13"]["result_sha256"] = "0" * 64  # a record of a file never renamed into place
    manifest["tasks"]["STS14"]["result_sha256"] = hashlib.sha256((folder / "STS14.json").read_bytes()).hexdigest()
    manifest["tasks"]["STS14"]["scores"]["test/default"] = 0.11  # the file's own hash wins over scores
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    cells = load_tree(tmp_path).drop_duplicates("task").set_index("task")
    assert cells.loc["STS12", "settings"] == "unknown" and cells.loc["STS13", "settings"] == "unknown"
    assert cells.loc["STS14", "settings"] == cells.loc["STS15", "settings"] == fingerprint(SETTINGS)


def test_same_settings_cells_merge_when_equal_and_are_refused_when_they_differ(tmp_path, capsys):
    eng_tree(tmp_path / "a")
    eng_tree(tmp_path / "same")
    eng_tree(tmp_path / "b", shift=("SCIDOCS", 0.01))
    once = summary_table(task_scores(merge_cells(load_tree(tmp_path / "a")), ENG), ENG)
    assert main(summarize_args(tmp_path / "a", tmp_path / "same")) == 0
    twice = pd.read_csv(tmp_path / "a" / "summary" / "summary.csv")
    assert len(twice) == 1 and twice.iloc[0].mean_task == once.iloc[0].mean_task
    assert main(summarize_args(tmp_path / "a", tmp_path / "b")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1 cell(s) have different values" in err and "SCIDOCS test/default" in err
    assert main(summarize_args(tmp_path / "a", tmp_path / "b", extra=["--allow_mixed"])) == 0
    later = pd.read_csv(tmp_path / "a" / "summary" / "per_task.csv").set_index("task")
    assert later.loc["SCIDOCS", "score"] == round(100 * (TYPE_VALUE["Retrieval"] + 0.01), 2)


@pytest.fixture(scope="module")
def local_runs(qzhou_dir, tmp_path_factory):
    """Two real runs of the tiny QZhou checkpoint on local STS12 data, with different batch sizes."""
    data = tmp_path_factory.mktemp("hub")
    fd.sts(data, "mteb/sts12-sts")
    outs = {}
    for batch_size in (32, 4):
        out = tmp_path_factory.mktemp(f"bs{batch_size}")
        config = EvalConfig(
            model_name_or_path=str(qzhou_dir),
            benchmark=ENG,
            tasks=("STS12",),
            data_dir=str(data),
            output_dir=str(out),
            dtype="float32",
            device="cpu",
            batch_size=batch_size,
            cache="off",
        )
        report = run(config)
        assert report.exit_code == 0
        outs[batch_size] = (out, report.folder)
    return outs


def test_a_run_on_local_data_is_labelled_local_with_its_run_settings(local_runs):
    out, folder = local_runs[32]
    assert main(summarize_args(out)) == 0
    row = pd.read_csv(out / "summary" / "summary.csv").iloc[0]
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert row.data == "local" and row.settings == fingerprint(manifest["settings"])
    assert manifest["tasks"]["STS12"]["data_source"] != "hub"
    per_task = pd.read_csv(out / "summary" / "per_task.csv").set_index("task")
    assert per_task.loc["STS12", "data"] == "local" and pd.isna(per_task.loc["STS13", "data"])
    assert not list(folder.glob(".*lock*"))  # the manifest lock leaves no file


def test_real_runs_with_another_batch_size_are_refused_then_shown_side_by_side(local_runs, tmp_path, capsys):
    (a, _), (b, _) = local_runs[32], local_runs[4]
    out = ["--output_dir", str(tmp_path)]
    assert main(summarize_args(a, b, extra=out)) == 2
    assert "batch_size (32 / 4)" in capsys.readouterr().err
    assert main(summarize_args(a, b, extra=[*out, "--allow_mixed"])) == 0
    table = pd.read_csv(tmp_path / "summary" / "summary.csv")
    assert len(table) == 2 and table["settings"].nunique() == 2 and set(table["data"]) == {"local"}


def test_a_multi_model_reference_tree_needs_reference_model(tmp_path, capsys):
    eng_tree(tmp_path / "run")
    eng_tree(tmp_path / "ref", "org/a", "r1")
    eng_tree(tmp_path / "ref", "org/b", "r9", shift=("STS12", 0.1))
    args = summarize_args(tmp_path / "run", extra=["--reference", str(tmp_path / "ref")])
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "holds several models (org/a@r1, org/b@r9)" in err and "--reference_model" in err
    assert main([*args, "--reference_model", "org/c"]) == 2
    assert main([*args, "--reference_model", "org/b"]) == 0
    deltas = pd.read_csv(tmp_path / "run" / "summary" / "deltas.csv").set_index("item")
    assert set(deltas["reference"]) == {"org/b@r9"} and deltas.loc["STS12", "delta"] == -10.0
    # the same check, callable before a run loads its model
    from qzhou_eval.errors import UserError
    from qzhou_eval.report.reference import check_reference

    with pytest.raises(UserError, match="holds several models"):
        check_reference(str(tmp_path / "ref"))
    assert check_reference(str(tmp_path / "ref"), "org/a@r1") == tmp_path / "ref"


def test_unknown_benchmark_names_the_close_match(tmp_path, capsys):
    eng_tree(tmp_path)
    assert main(summarize_args(tmp_path, bench="MTEB(eng,v2)")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: unknown benchmark 'MTEB(eng,v2)'; did you mean 'MTEB(eng, v2)' or 'MTEB(eng, v1)'")
    assert main(summarize_args(tmp_path, bench="MTEB(eng)")) == 0  # mteb's old name of MTEB(eng, v2)
    assert pd.read_csv(tmp_path / "summary" / "summary.csv").iloc[0].benchmark == ENG


def test_summary_never_goes_into_a_revision_folder(tmp_path, capsys):
    eng_tree(tmp_path)
    folder = tmp_path / "org__a" / "r1"
    before = sorted(p.name for p in folder.iterdir())
    assert main(summarize_args(folder)) == 0  # a revision folder, as after a run: the tree root gets it
    assert (tmp_path / "summary" / "summary.csv").is_file()
    assert sorted(p.name for p in folder.iterdir()) == before
    assert main(summarize_args(tmp_path, extra=["--output_dir", str(folder)])) == 2
    assert "inside a model's result folder" in capsys.readouterr().err


def test_max_delta_needs_a_reference(tmp_path, capsys):
    eng_tree(tmp_path)
    assert main(summarize_args(tmp_path, extra=["--max_delta", "0.5"])) == 2
    assert "--max_delta needs --reference" in capsys.readouterr().err


def test_benchmark_snapshot_equals_mteb_for_every_benchmark():
    from qzhou_eval.recipe.benchmarks import benchmark_snapshot, listing_from_mteb, names_from_mteb

    snap = benchmark_snapshot()
    assert snap is not None, "data/benchmark_cells.json.gz is missing or not from the installed mteb"
    names, previous = names_from_mteb()
    assert list(snap["benchmarks"]) == names and snap["previous_names"] == previous
    for name in names:
        assert snap["benchmarks"][name] == listing_from_mteb(name), name


def test_a_read_only_tree_is_left_untouched_and_the_summary_goes_to_the_working_folder(tmp_path, monkeypatch, capsys):
    tree = tmp_path / "published"
    eng_tree(tree)
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    tree.chmod(0o555)
    monkeypatch.chdir(tmp_path / "..")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    try:
        assert main(summarize_args(tree)) == 0
    finally:
        tree.chmod(0o755)
    assert sorted(p.relative_to(tree) for p in tree.rglob("*")) == before
    assert (work / "summary" / "summary.csv").is_file()
