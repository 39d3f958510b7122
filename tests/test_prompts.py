"""Prompt tables equal the reference scripts' rule for every task and prompt type."""

import json

import pytest
from conftest import run_cli

from qzhou_eval.instructions import PROMPT_TYPES, load_table

BENCHMARKS = {"MTEB(eng, v2)": 41, "MTEB(cmn, v1)": 31}


def expected_prefix(ref: dict, bench: str, task: str, kind: str, use_instruction: bool) -> str:
    """The reference rule, written from the shared reference facts, not from our table."""
    b = ref[bench]
    instruction = b["instructions"][task]
    if not use_instruction or not instruction:
        return ""
    if kind == "query" or task in b["symmetric"]:
        return ref["template"].format(instruction)
    return ""


@pytest.mark.parametrize("bench,n", BENCHMARKS.items())
def test_tables_cover_the_benchmark_and_match_mteb(bench, n):
    from qzhou_eval.tasks import benchmark_tasks

    table = load_table(bench)
    assert len(table.tasks) == n
    assert set(table.tasks) == set(benchmark_tasks(bench))
    assert len(table.symmetric) == {41: 34, 31: 23}[n] and table.symmetric <= set(table.tasks)
    assert table.template == "Instruct: {}\nQuery: "


@pytest.mark.parametrize("use_instruction", [True, False])
@pytest.mark.parametrize("bench", BENCHMARKS)
def test_prompts_command_follows_reference_rule(shared_data, bench, use_instruction):
    ref = json.loads((shared_data / "reference" / "qzhou_instructions.json").read_text())
    out = run_cli(
        "-m",
        "qzhou_eval",
        "prompts",
        "--benchmark",
        bench,
        "--format",
        "json",
        "--use_instruction",
        str(use_instruction).lower(),
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == BENCHMARKS[bench]
    for task, prefixes in rows.items():
        assert set(prefixes) == set(PROMPT_TYPES)
        for kind, prefix in prefixes.items():
            assert prefix == expected_prefix(ref, bench, task, kind, use_instruction), (task, kind)
    if not use_instruction:
        assert all(p == "" for v in rows.values() for p in v.values())


def test_known_prefixes_by_hand():
    eng = load_table("MTEB(eng, v2)")
    assert (
        eng.prefix("ArguAna", "passage", True)
        == "Instruct: Given a claim, find documents that refute the claim\nQuery: "
    )
    assert eng.prefix("SCIDOCS", "passage", True) == ""
    assert eng.prefix("SCIDOCS", "query", True).endswith("\nQuery: ")
    assert eng.prefix("STSBenchmark", None, True) == "Instruct: Retrieve semantically similar text\nQuery: "
    cmn = load_table("MTEB(cmn, v1)")
    assert cmn.prefix("T2Reranking", "passage", True).startswith("Instruct: Given a Chinese search query")
    assert cmn.prefix("T2Retrieval", "passage", True) == ""
    assert cmn.prefix("Ocnli", None, True) == "Instruct: Retrieve semantically similar text.\nQuery: "


def test_table_format_is_for_people():
    out = run_cli("-m", "qzhou_eval", "prompts", "--benchmark", "MTEB(cmn, v1)")
    assert out.returncode == 0
    assert "T2Retrieval" in out.stdout and "query" in out.stdout.splitlines()[1]
