"""Prompts: every preset's prefix, for every task and side of the four benchmarks the Qwen3 team published,
equals an independent rendering written here from the published rules (not from our code or tables)."""

import hashlib
import json

import pytest
from conftest import REPO, run_cli

from qzhou_eval.cli import main
from qzhou_eval.recipe.instructions import PROMPT_TYPES, load_table, make_rule
from qzhou_eval.recipe.presets import get_preset

BENCHMARKS = {"MTEB(eng, v2)": 41, "MTEB(cmn, v1)": 31}
QWEN3_BENCHMARKS = ("MTEB(eng, v2)", "MTEB(cmn, v1)", "MTEB(Multilingual, v2)", "MTEB(Code, v1)")
QWEN3_SHA256 = "c9493103f173d53b1d0a40e42789863af2ce2d5de022a0e075c390229791bfd2"  # FACTS §9, the Git LFS object
# mteb 1.38.30's evaluators pass query/passage for these task types, and no prompt type for every other one
PROMPTED = {"Retrieval", "Reranking", "InstructionRetrieval"}


def expected_prefix(ref: dict, bench: str, task: str, kind: str, use_instruction: bool) -> str:
    """The reference rule, written from the shared reference facts, not from our table."""
    b = ref[bench]
    instruction = b["instructions"][task]
    if not use_instruction or not instruction:
        return ""
    if kind == "query" or task in b["symmetric"]:
        return ref["template"].format(instruction)
    return ""


def metadata_instruction(task, kind: str):
    """mteb's task instruction read straight from the metadata: the prompt (its side's entry when it is a dict,
    "" when that side is missing), else the task type's default prompt."""
    prompt = task.metadata.prompt
    if isinstance(prompt, dict) and kind != "none":
        return prompt.get(kind) or ""
    return prompt or task.abstask_prompt


def qwen3_expected(entries: dict, task, kind: str) -> str:
    """The Qwen3 team's run_mteb.py side rules in their order (FACTS §9), on their own file's entries."""
    name, ttype = task.metadata.name, task.metadata.type
    symmetric = False
    if name in entries:
        if isinstance(entries[name], dict):
            symmetric = True
            instruction = entries[name].get(kind, "") if kind != "none" else ""
        else:
            instruction = entries[name]
    else:
        instruction = metadata_instruction(task, kind)
    if "Retrieval" in ttype and not symmetric and kind != "query":
        return ""
    if ttype in ("STS", "PairClassification"):
        instruction = "Retrieve semantically similar text"
    # their `task_type in "Bitext Mining"` never matches "BitextMining": bitext keeps the instruction above
    if ttype == "Retrieval" and kind == "query" and instruction is None:
        instruction = "Retrieval relevant passage for the given query."
    if not instruction or not instruction.strip():
        return ""
    return f"Instruct: {instruction}\nQuery:"


def mteb_wrapper_expected(task, kind: str) -> str:
    """gte-Qwen2 / e5 instruct models: the task's instruction on queries and on texts mteb passes without a prompt
    type, never on documents, template 'Instruct: {}\\nQuery: ' (mteb/models/gte_models.py, e5_instruct.py)."""
    if kind == "passage":
        return ""
    instruction = metadata_instruction(task, kind)
    return f"Instruct: {instruction}\nQuery: " if instruction else ""


def benchmark_tasks(bench: str) -> dict:
    import mteb

    return {t.metadata.name: t for t in mteb.get_benchmark(bench).tasks}


@pytest.fixture
def prompts_json(capsys):
    """`python -m qzhou_eval prompts ... --format F` in this process; the parsed json."""

    def call(*flags, fmt="json"):
        capsys.readouterr()
        code = main(["prompts", *flags, "--format", fmt])
        out = capsys.readouterr()
        assert code == 0, out.err
        return json.loads(out.out)

    return call


@pytest.mark.parametrize("bench,n", BENCHMARKS.items())
def test_tables_cover_the_benchmark_and_match_mteb(bench, n):
    table = load_table(bench)
    assert len(table.tasks) == n
    assert set(table.tasks) == set(benchmark_tasks(bench))
    assert len(table.symmetric) == {41: 34, 31: 23}[n] and table.symmetric <= set(table.tasks)
    assert get_preset("qzhou").prompt["template"] == "Instruct: {}\nQuery: "


@pytest.mark.parametrize("use_instruction", [True, False])
@pytest.mark.parametrize("bench", BENCHMARKS)
def test_prompts_command_follows_reference_rule(shared_data, prompts_json, bench, use_instruction):
    ref = json.loads((shared_data / "reference" / "qzhou_instructions.json").read_text())
    rows = prompts_json("--benchmark", bench, "--use_instruction", str(use_instruction).lower())
    assert len(rows) == BENCHMARKS[bench]
    for task, row in rows.items():
        assert set(PROMPT_TYPES) <= set(row)
        for kind in PROMPT_TYPES:
            assert row[kind] == expected_prefix(ref, bench, task, kind, use_instruction), (task, kind)
        assert row["normalize"] is True and row["max_length"] == 1024  # the reference scripts': every type, 1024
    if not use_instruction:
        assert all(v[k] == "" for v in rows.values() for k in PROMPT_TYPES)


@pytest.mark.parametrize("bench", QWEN3_BENCHMARKS)
def test_qwen3_prompts_equal_the_qwen3_teams_rules_on_every_task_and_side(shared_data, prompts_json, bench):
    """Acceptance 1 of issue 10: every (task, side) of the four benchmarks, empty cells included."""
    entries = json.loads((shared_data / "reference" / "qwen3_task_prompts.json").read_text(encoding="utf-8"))
    tasks = benchmark_tasks(bench)
    rows = prompts_json("--preset", "qwen3-embedding", "--benchmark", bench)
    assert list(rows) == list(tasks)
    for name, task in tasks.items():
        for kind in PROMPT_TYPES:  # every side, also those mteb never calls, and also where the prefix is empty
            assert rows[name][kind] == qwen3_expected(entries, task, kind), (name, kind)
    called = [
        rows[n][k]
        for n, t in tasks.items()
        for k in (("query", "passage") if t.metadata.type in PROMPTED else ("none",))
    ]
    assert any(called)


@pytest.mark.parametrize("preset", ["gte-qwen2"])
@pytest.mark.parametrize("bench", QWEN3_BENCHMARKS)
def test_instruct_model_prompts_equal_mtebs_wrapper_rule(prompts_json, preset, bench):
    tasks = benchmark_tasks(bench)
    rows = prompts_json("--preset", preset, "--benchmark", bench)
    assert list(rows) == list(tasks)
    for name, task in tasks.items():
        for kind in PROMPT_TYPES:
            assert rows[name][kind] == mteb_wrapper_expected(task, kind), (preset, name, kind)
        if task.metadata.type not in PROMPTED:  # the none side is instructed, not only checked when non-empty
            assert rows[name]["none"].startswith("Instruct: ") and len(rows[name]["none"]) > len("Instruct: \nQuery: ")


def test_qwen3_known_cells_by_hand():
    rule = make_rule(get_preset("qwen3-embedding").prompt)
    assert rule.cell("ArguAna", "query").prefix.startswith("Instruct: Given a claim")
    # ArguAna is a dict entry in their file: symmetric, so its documents get their "passage" text
    assert rule.cell("ArguAna", "passage").source == "table" and rule.prefix("ArguAna", "passage").endswith("\nQuery:")
    assert rule.cell("SCIDOCS", "passage")[:2] == ("", "none")
    assert rule.cell("STS12", None)[:2] == ("Instruct: Retrieve semantically similar text\nQuery:", "fixed")
    assert rule.cell("SprintDuplicateQuestions", None).source == "fixed"
    # reranking documents get the instruction, bitext keeps the file's instruction (their Bitext rule never fires)
    assert rule.prefix("SciDocsRR", "passage") == rule.prefix("SciDocsRR", "query") != ""
    assert rule.cell("BUCC.v2", None).source == "table" and "Retrieve semantically similar" not in rule.prefix(
        "BUCC.v2", None
    )
    # a task outside their file: mteb's own task instruction
    assert rule.cell("BornholmBitextMining", None).source == "task_metadata"
    assert rule.prefix("MMarcoReranking", "query").startswith("Instruct: ")
    # no trailing space after "Query:"
    assert all(p.endswith("\nQuery:") for p in rule.prefixes("SCIDOCS").values() if p)


def test_qwen3_file_is_carried_byte_for_byte_with_its_sha256(shared_data):
    carried = REPO / "instructions" / "qwen3" / "task_prompts.json"
    meta = json.loads((carried.parent / "source.json").read_text())
    assert hashlib.sha256(carried.read_bytes()).hexdigest() == meta["sha256"] == QWEN3_SHA256
    assert carried.read_bytes() == (shared_data / "reference" / "qwen3_task_prompts.json").read_bytes()
    assert "QwenLM/Qwen3-Embedding" in meta["source"] and "github.com" in get_preset("qwen3-embedding").source


def test_an_edited_instruction_file_is_refused(tmp_path, monkeypatch):
    import shutil

    from qzhou_eval.errors import UserError
    from qzhou_eval.recipe import instructions

    shutil.copytree(REPO / "instructions", tmp_path / "instructions")
    path = tmp_path / "instructions" / "qwen3" / "task_prompts.json"
    path.write_bytes(path.read_bytes().replace(b"Classify", b"Classifi", 1))
    monkeypatch.setattr(instructions, "INSTRUCTIONS_DIR", tmp_path / "instructions")
    instructions.load_file.cache_clear()
    try:
        with pytest.raises(UserError, match="sha256"):
            make_rule(get_preset("qwen3-embedding").prompt)
    finally:
        instructions.load_file.cache_clear()


def qzhou(bench=None):
    return make_rule(get_preset("qzhou").prompt)


def test_known_prefixes_by_hand():
    eng = qzhou()
    assert eng.prefix("ArguAna", "passage") == "Instruct: Given a claim, find documents that refute the claim\nQuery: "
    assert eng.prefix("SCIDOCS", "passage") == ""
    assert eng.prefix("SCIDOCS", "query").endswith("\nQuery: ")
    assert eng.prefix("STSBenchmark", None) == "Instruct: Retrieve semantically similar text\nQuery: "
    cmn = qzhou()
    assert cmn.prefix("T2Reranking", "passage").startswith("Instruct: Given a Chinese search query")
    assert cmn.prefix("T2Retrieval", "passage") == ""
    assert cmn.prefix("Ocnli", None) == "Instruct: Retrieve semantically similar text.\nQuery: "


def test_qzhou_falls_back_to_mteb_task_metadata_outside_its_72_tasks(prompts_json):
    """A task in neither QZhou table: mteb's task instruction on queries and on unprompted texts, never documents."""
    import mteb

    rows = prompts_json("--tasks", "BornholmBitextMining", "SpartQA", "STS12", fmt="json_sources")
    bitext, spart = mteb.get_task("BornholmBitextMining"), mteb.get_task("SpartQA")
    assert rows["BornholmBitextMining"]["none"] == {
        "prefix": f"Instruct: {metadata_instruction(bitext, 'none')}\nQuery: ",
        "source": "task_metadata",
        "note": "",
    }
    assert rows["SpartQA"]["query"]["prefix"] == f"Instruct: {metadata_instruction(spart, 'query')}\nQuery: "
    assert rows["SpartQA"]["passage"] == {"prefix": "", "source": "none", "note": ""}
    assert rows["SpartQA"]["called"] == ["query", "passage"] and rows["BornholmBitextMining"]["called"] == ["none"]
    assert rows["STS12"]["none"]["source"] == "table" and rows["STS12"]["type"] == "STS"


def test_the_same_task_gets_the_same_prefix_in_any_benchmark(prompts_json):
    """Rules are benchmark-independent: STS17 is in MTEB(eng, v2) and MTEB(Multilingual, v2)."""
    for preset in ("qzhou", "qwen3-embedding", "gte-qwen2"):
        eng = prompts_json("--preset", preset, "--benchmark", "MTEB(eng, v2)")
        multi = prompts_json("--preset", preset, "--benchmark", "MTEB(Multilingual, v2)")
        shared = set(eng) & set(multi)
        assert len(shared) > 10
        assert all(eng[t] == multi[t] for t in shared), preset


def test_unknown_names_stop_with_one_error_line(capsys):
    assert main(["prompts", "--tasks", "STS1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown task 'STS1'") and "Did you mean" in err
    assert main(["prompts", "--benchmark", "MTEB(eng, v3)"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_table_format_is_for_people():
    out = run_cli("-m", "qzhou_eval", "prompts", "--benchmark", "MTEB(cmn, v1)")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert "preset qzhou" in lines[0] and "T2Retrieval" in out.stdout
    assert any(line.startswith("task") and "query" in line and "passage" in line for line in lines)
    row = next(line for line in lines if line.startswith("T2Retrieval "))
    assert row.split()[1:5] == ["Retrieval", "table", "none", "(none)"]
