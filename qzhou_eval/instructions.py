"""Instruction tables (data) and the prompt rule that turns them into the exact text prefix.

Tables (`instructions/*.json`, one per benchmark, each naming its source) hold the per-task
instruction strings and the symmetric list of the reference scripts. A preset's `prompt` block
(`presets/*.json`) holds the rule: template, which prompt types get the instruction, which tasks are
symmetric, where the instruction comes from. `PromptRule.prefix` is the only place that decides which
text gets which prefix; `prompts`, `embed` and evaluation all call it, so what users audit is what
the model sees.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .errors import UserError

INSTRUCTIONS_DIR = Path(__file__).resolve().parent.parent / "instructions"

# mteb 1.38.30 passes prompt_type=None for STS, classification, clustering, pair classification and
# summarization; "none" is how that case is named in tables and on the command line.
PROMPT_TYPES = ("query", "passage", "none")


@dataclass(frozen=True)
class InstructionTable:
    """One benchmark's instruction strings and symmetric list, with their source."""

    benchmark: str
    script: str
    source: str
    symmetric: frozenset[str]
    instructions: dict[str, str]
    path: Path

    @property
    def tasks(self) -> list[str]:
        return sorted(self.instructions)


@dataclass(frozen=True)
class PromptRule:
    """How a preset prefixes texts: template, sides, symmetric tasks, instruction source."""

    table: InstructionTable
    template: str = "Instruct: {}\nQuery: "
    instruct: frozenset[str] = frozenset({"query"})
    symmetric: frozenset[str] = frozenset()
    source: str = "table"  # table | task_metadata (falls back to the table) | fixed | model_prompts
    fixed: str = ""
    task_types: frozenset[str] | None = None
    model_prompts: dict[str, str] = field(default_factory=dict)
    override: str | None = None  # --instruction: replaces the text, keeps the side rules
    use_instruction: bool = True

    def instruction(self, task: str, kind: str) -> str:
        if self.override is not None:
            return self.override
        if self.source == "fixed":
            return self.fixed
        if self.source == "task_metadata":  # mteb's task prompt; the table where a task has none
            prompt = _task_metadata_prompt(task)
            if isinstance(prompt, dict):
                prompt = prompt.get(kind if kind != "none" else "query")
            if prompt:
                return prompt
        if task not in self.table.instructions:
            raise UserError(f"task {task!r} has no instruction in {self.table.path.name}")
        return self.table.instructions[task]

    def prefix(self, task: str, prompt_type: str | None) -> str:
        """The exact string prepended to a text of `task` that mteb asks for as `prompt_type`."""
        kind = prompt_type or "none"
        if kind not in PROMPT_TYPES:
            raise UserError(f"unknown prompt type {prompt_type!r}; choose one of: {', '.join(PROMPT_TYPES)}")
        if not self.use_instruction:
            return ""
        if self.source == "model_prompts":  # sentence-transformers: by task name, else by prompt type
            names = [task, kind] + (["document"] if kind == "passage" else [])
            return next((self.model_prompts[n] for n in names if n in self.model_prompts), "")
        if self.task_types is not None and _task_type(task) not in self.task_types:
            return ""
        if kind not in self.instruct and task not in self.symmetric:
            return ""
        text = self.instruction(task, kind)
        return self.template.format(text) if text else ""

    def prefixes(self, task: str) -> dict[str, str]:
        return {kind: self.prefix(task, kind) for kind in PROMPT_TYPES}

    def describe(self) -> dict[str, Any]:
        """For the manifest: the rule itself, not only its results."""
        return {
            "template": self.template,
            "instruct": sorted(self.instruct),
            "symmetric": "table" if self.symmetric == self.table.symmetric else sorted(self.symmetric),
            "source": self.source,
            "table": self.table.path.name,
            "table_source": self.table.source,
            "task_types": sorted(self.task_types) if self.task_types is not None else None,
            "override": self.override,
            "use_instruction": self.use_instruction,
        }


def _task_metadata_prompt(task: str) -> Any:
    import mteb

    return mteb.get_task(task).metadata.prompt


def _task_type(task: str) -> str:
    import mteb

    return mteb.get_task(task).metadata.type


def _read(path: Path) -> InstructionTable:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return InstructionTable(
        benchmark=raw["benchmark"],
        script=raw.get("script", ""),
        source=raw["source"],
        symmetric=frozenset(raw["symmetric"]),
        instructions=dict(raw["instructions"]),
        path=path,
    )


@cache
def all_tables() -> dict[str, InstructionTable]:
    """Every table in `instructions/`, keyed by benchmark name."""
    tables = [_read(p) for p in sorted(INSTRUCTIONS_DIR.glob("*.json"))]
    return {t.benchmark: t for t in tables}


def load_table(benchmark: str) -> InstructionTable:
    tables = all_tables()
    if benchmark not in tables:
        raise UserError(f"no instruction table for benchmark {benchmark!r}; known: {', '.join(sorted(tables))}")
    return tables[benchmark]


def make_rule(
    table: InstructionTable,
    prompt: dict[str, Any],
    use_instruction: bool = True,
    override: str | None = None,
    model_prompts: dict[str, str] | None = None,
) -> PromptRule:
    """A preset's `prompt` block applied to one benchmark's table."""
    instructions = prompt.get("instructions", "table")
    symmetric = table.symmetric if prompt.get("symmetric") == "table" else frozenset(prompt.get("symmetric") or [])
    source, fixed = (instructions, "") if isinstance(instructions, str) else ("fixed", instructions["fixed"])
    types = prompt.get("task_types")
    return PromptRule(
        table=table,
        template=prompt.get("template", "{}"),
        instruct=frozenset(prompt.get("instruct", ["query"])),
        symmetric=symmetric,
        source=source,
        fixed=fixed,
        task_types=frozenset(types) if types is not None else None,
        model_prompts=dict(model_prompts or {}),
        override=override,
        use_instruction=use_instruction,
    )


def benchmark_of_task(task: str) -> InstructionTable | None:
    """The table (and so the script) that owns `task`, for 'wrong script' messages."""
    for table in all_tables().values():
        if task in table.instructions:
            return table
    return None


def unknown_task_message(task: str, table: InstructionTable) -> str:
    other = benchmark_of_task(task)
    if other is not None and other.benchmark != table.benchmark:
        return f"task {task!r} belongs to {other.benchmark}, not {table.benchmark}; run it with {other.script}"
    close = difflib.get_close_matches(task, table.tasks, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    listing = f"{len(table.tasks)} tasks; see `python -m qzhou_eval prompts`"
    return f"unknown task {task!r} for {table.benchmark}.{hint} ({listing})"


def prompt_rule(config: Any, checkpoint_path: Path) -> PromptRule:
    """The resolved config's preset rule (with the model's own prompts if it has any).

    Interim version (table chosen by benchmark, else by the first task): H4 replaces it with a
    benchmark-independent rule."""
    from .presets import get_preset, resolve_values

    preset = get_preset(config.preset)
    _, model_prompts = resolve_values(preset, checkpoint_path)
    tables = all_tables()
    table = tables.get(config.benchmark) or benchmark_of_task(config.tasks[0]) or next(iter(tables.values()))
    return make_rule(table, preset.prompt, config.use_instruction, config.instruction, model_prompts)
