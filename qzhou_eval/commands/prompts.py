"""`prompts`: the exact prefix each task and prompt type gets under a preset, and where it comes from."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace
from typing import Any

from ..config import PROMPT_TYPES
from ..recipe.benchmarks import parse_task_list, select_specs
from ..recipe.checkpoint import locate
from ..recipe.instructions import Cell, prompt_rule, sides_called, task_type
from ..recipe.presets import Preset, detect, get_preset, resolve_values
from .flags import boolean


def add_parser(sub: Any) -> None:
    pr = sub.add_parser("prompts", help="the exact prefix each task and prompt type gets, and where it comes from")
    pr.add_argument(
        "--benchmark", default=None, help="any mteb 1.38.30 benchmark (default: MTEB(eng, v2), unless --tasks)"
    )
    pr.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        help="task names (space- or comma-separated); any mteb task without --benchmark",
    )
    pr.add_argument("--use_instruction", type=boolean, default=True, help="false: no prefix anywhere")
    pr.add_argument(
        "--format",
        choices=["table", "json", "json_sources"],
        default="table",
        help='json: {"Task": {"query", "passage", "none": the prefixes, "normalize", "max_length", "source": per '
        "prompt type the cell's source and the preset decision it follows, \"references\": those decisions' "
        "sources}}; "
        "json_sources: each cell's prefix and source, the task type and the sides mteb calls",
    )
    pr.add_argument("--preset", default=None, help="default: detected from --model_name_or_path, else qzhou")
    pr.add_argument("--model_name_or_path", default=None, help="a model, for detection and its own prompts")
    pr.add_argument("--instruction", default=None, help="replace every task's instruction text")
    pr.set_defaults(func=cmd_prompts)


def follows(preset: Preset, cell: Cell) -> str:
    """Which of the preset's decisions (its `sources` keys) a cell follows."""
    sources = preset.sources or {}
    if cell.source == "none":
        return "sides"
    if cell.source == "override":
        return "--instruction"
    if (
        cell.source == "task_metadata"
        and "fallback" in sources
        and preset.prompt.get("instructions") != "task_metadata"
    ):
        return "fallback"
    return "instructions"


def task_row(preset: Preset, values: dict[str, Any], task: str, row: dict[str, Cell]) -> dict[str, Any]:
    """One task as `--format json` gives it: the prefix per prompt type (keys query, passage, none), then whether
    its embeddings are normalised, the max length, and per prompt type the cell's source and the decision it follows."""
    by_type = dict(preset.normalize_by_type)
    sources = preset.sources or {}
    out: dict[str, Any] = {kind: cell.prefix for kind, cell in row.items()}
    out["normalize"] = by_type.get(task_type(task), values["normalize"])
    out["max_length"] = values["max_length"]
    out["source"] = {
        kind: {"cell": cell.source, "note": cell.note, "follows": follows(preset, cell)} for kind, cell in row.items()
    }
    followed = [v["follows"] for v in out["source"].values()] + ["normalize", "max_length"]
    out["references"] = {key: sources.get(key, "") for key in dict.fromkeys(followed)}
    return out


def cmd_prompts(args: argparse.Namespace) -> int:
    tasks = parse_task_list(args.tasks)
    benchmark = args.benchmark or (None if tasks else "MTEB(eng, v2)")
    names = [name for spec in select_specs(benchmark, tasks) for name in spec.names]  # an aggregate's subtasks
    path = None
    if args.model_name_or_path:
        path, config, _ = locate(args.model_name_or_path, weights=False)
        preset = get_preset(args.preset) if args.preset else detect(path, config, args.model_name_or_path)[0]
        values, _ = resolve_values(preset, path)
    else:
        preset = get_preset(args.preset or "qzhou")
        values = preset.values
    settings = SimpleNamespace(preset=preset.name, use_instruction=args.use_instruction, instruction=args.instruction)
    rule = prompt_rule(settings, path)
    cells = {task: {kind: rule.cell(task, kind) for kind in PROMPT_TYPES} for task in names}
    rows = {task: task_row(preset, values, task, row) for task, row in cells.items()}
    if args.format == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if args.format == "json_sources":
        out = {
            t: {"type": task_type(t), "called": list(sides_called(t)), **{k: c._asdict() for k, c in row.items()}}
            for t, row in cells.items()
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print_table(benchmark, preset, rule, args.use_instruction, cells, rows)
    return 0


def print_table(
    benchmark: str | None, preset: Preset, rule: Any, use_instruction: bool, cells: dict, rows: dict
) -> None:
    print(
        f"{benchmark or 'tasks'}, preset {preset.name}: rule {rule.rule}, template {rule.template!r}, "
        f"use_instruction={use_instruction}"
    )
    print(f"source: {preset.source}")
    print("cells: where each side's instruction comes from (table, family_table, task_metadata, fixed, model_prompts,")
    print("       override; none = no prefix); in brackets: a side mteb 1.38.30 never encodes for that task type;")
    print("       norm: L2-normalised embeddings; max: max_length; follows: the preset's decisions the cells follow")
    width = max(len(t) for t in cells)
    print(f"{'task':{width}s}  {'type':20s} {'query':15s} {'passage':15s} {'none':15s} norm  max   follows / prefix")
    used: dict[str, str] = {}
    for task, row in cells.items():
        called = sides_called(task)
        marks = [row[k].source if k in called else f"({row[k].source})" for k in PROMPT_TYPES]
        shown = " | ".join(dict.fromkeys(repr(row[k].prefix) for k in called if row[k].prefix))
        keys = list(dict.fromkeys(rows[task]["source"][k]["follows"] for k in called))
        used.update({k: rows[task]["references"][k] for k in [*keys, "normalize", "max_length"]})
        norm = "yes" if rows[task]["normalize"] is True else "no" if rows[task]["normalize"] is False else "model"
        head = f"{task:{width}s}  {task_type(task):20s} {marks[0]:15s} {marks[1]:15s} {marks[2]:15s}"
        print(f"{head} {norm:5s} {str(rows[task]['max_length']):5s} {'+'.join(keys)} {shown}")
    print("the decisions followed, and their sources (presets/" + preset.name + ".json):")
    for key, reference in used.items():
        print(f"  {key}: {reference}")
