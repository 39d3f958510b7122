"""Prompt tables equal the reference scripts' rule for every task and prompt type."""

import json

import pytest
from conftest import run_cli

from qzhou_eval.instructions import PROMPT_TYPES, load_table, make_rule
from qzhou_eval.presets import get_preset

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
    assert get_preset("qzhou").prompt["template"] == "Instruct: {}\nQuery: "


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


def qzhou(bench):
    return make_rule(load_table(bench), get_preset("qzhou").prompt)


def test_known_prefixes_by_hand():
    eng = qzhou("MTEB(eng, v2)")
    assert eng.prefix("ArguAna", "passage") == "Instruct: Given a claim, find documents that refute the claim\nQuery: "
    assert eng.prefix("SCIDOCS", "passage") == ""
    assert eng.prefix("SCIDOCS", "query").endswith("\nQuery: ")
    assert eng.prefix("STSBenchmark", None) == "Instruct: Retrieve semantically similar text\nQuery: "
    cmn = qzhou("MTEB(cmn, v1)")
    assert cmn.prefix("T2Reranking", "passage").startswith("Instruct: Given a Chinese search query")
    assert cmn.prefix("T2Retrieval", "passage") == ""
    assert cmn.prefix("Ocnli", None) == "Instruct: Retrieve semantically similar text.\nQuery: "


def test_table_format_is_for_people():
    out = run_cli("-m", "qzhou_eval", "prompts", "--benchmark", "MTEB(cmn, v1)")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert "preset qzhou" in lines[0] and "T2Retrieval" in out.stdout
    assert any(line.startswith("task") and "query" in line and "passage" in line for line in lines)
