"""Offline prefetch: every dataset repository a suite reads, at the revision mteb pins, plus the model.

Compute nodes often have no internet. `python -m qzhou_eval download` fills `DIR/<dataset path>` (the
layout `--data_dir` reads, see data.py) with a snapshot of each task's dataset repository at
`task.metadata.dataset["revision"]`, and for C-MTEB retrieval the `<path>-qrels` sibling at
`dataset["qrel_revision"]` (mteb 1.38.30's CMTEBRetrieval loader reads `load_dataset(path + "-qrels",
revision=qrel_revision)`); the model goes into the Hugging Face cache, where a hub id finds it with
`HF_HUB_OFFLINE=1`.

Resumable: huggingface_hub writes each file under `.cache/huggingface/download/*.incomplete` and renames
it when whole, resuming a partial one with a range request; a repository counts as complete only once
its snapshot returned and a marker (`.cache/qzhou_eval/complete.json`: revision, every file and its
size) was written after it. A rerun skips a complete repository without any request, so a second
download of the same data transfers nothing. Files and folders starting with `.` are not data to the
datasets library, so the marker changes nothing for the runner.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import write_json_atomic
from ..recipe.benchmarks import task_object
from .data import loading_script

MARKER = Path(".cache") / "qzhou_eval" / "complete.json"


@dataclass(frozen=True)
class Repo:
    repo_id: str
    revision: str | None
    repo_type: str  # "dataset" or "model"
    why: str  # the task (or "model") that needs it, for messages

    @property
    def label(self) -> str:
        return f"{self.repo_type} {self.repo_id}@{(self.revision or 'main')[:12]}"


def dataset_repos(specs: list[Any]) -> list[Repo]:
    """The dataset repositories of `specs` (tasks.BenchmarkTask), each once, in task order."""
    from ..recipe.benchmarks import leaf_tasks

    repos: dict[tuple[str, str | None], Repo] = {}
    for spec in specs:
        for leaf in leaf_tasks(task_object(spec)):  # an aggregate: each subtask's repository
            dataset = leaf.metadata.dataset
            wanted = [(dataset["path"], dataset.get("revision"))]
            if "qrel_revision" in dataset:  # C-MTEB retrieval: qrels live in a sibling repository
                wanted.append((dataset["path"] + "-qrels", dataset["qrel_revision"]))
            for path, revision in wanted:
                repos.setdefault((path, revision), Repo(path, revision, "dataset", leaf.metadata.name))
    return list(repos.values())


def local_files(folder: Path) -> dict[str, int]:
    """Every data file under `folder` -> size; hidden ones (.cache/ of huggingface_hub, .gitattributes) left out."""
    out = {}
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if f.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[rel.as_posix()] = f.stat().st_size
    return out


def is_complete(folder: Path, repo: Repo) -> bool:
    """The marker names this repository and revision, and every file it lists is there at its size."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if marker.get("repo_id") != repo.repo_id or marker.get("revision") != repo.revision:
        return False
    files = marker.get("files") or {}
    return bool(files) and all(
        (folder / name).is_file() and (folder / name).stat().st_size == size for name, size in files.items()
    )


def drop_damaged(folder: Path) -> list[str]:
    """Delete files that a marker lists at another size (edited or truncated after the download):
    huggingface_hub trusts a file whose recorded commit matches, so it would never fetch them again."""
    try:
        files = json.loads((folder / MARKER).read_text(encoding="utf-8")).get("files") or {}
    except (OSError, ValueError):
        return []
    damaged = [n for n, size in files.items() if (folder / n).is_file() and (folder / n).stat().st_size != size]
    for name in damaged:
        (folder / name).unlink()
    return damaged


def mark_complete(folder: Path, repo: Repo) -> None:
    """Written last, atomically: a killed download never leaves a marker that claims too much."""
    body = {"repo_id": repo.repo_id, "revision": repo.revision, "files": local_files(folder)}
    write_json_atomic(folder / MARKER, body)


def _forwarding_bar(shared: Any) -> type:
    """A tqdm class for snapshot_download's per-file counter that moves the one shared bar instead:
    each repository is one unit of the shared bar, its files fractions of it."""
    from tqdm.auto import tqdm

    class Forward(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float = 1) -> None:
            if self.total:
                shared.update(n / self.total)

        def __iter__(self):  # older tqdm wraps the iterable instead of counting futures
            for item in self.iterable:
                yield item
                self.update(1)

    return Forward


def _fetch(repo: Repo, local_dir: Path | None, tqdm_class: type) -> Path:
    from huggingface_hub import snapshot_download

    kwargs: dict[str, Any] = {"repo_type": repo.repo_type, "revision": repo.revision, "tqdm_class": tqdm_class}
    if local_dir is not None:
        kwargs["local_dir"] = str(local_dir)
    return Path(snapshot_download(repo.repo_id, **kwargs))


def _why(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def download(specs: list[Any], data_dir: str | None, model: str | None, model_revision: str | None) -> int:
    """Fetch what `specs` and `model` need; returns the number of repositories that failed (each named)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from tqdm.auto import tqdm

    if constants.HF_HUB_OFFLINE:
        raise UserError("HF_HUB_OFFLINE=1 is set: download needs the hub; unset it for this command")
    repos = dataset_repos(specs) if specs else []
    if model:
        repos.append(Repo(model, model_revision, "model", "model"))
    root = Path(data_dir).resolve() if data_dir else None
    failed: dict[str, str] = {}
    fetched = skipped = 0
    models: list[str] = []
    scripts: list[str] = []  # script-based repositories: data.py never runs their code
    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()  # one bar: huggingface_hub's per-file byte bars stay quiet
    try:
        with tqdm(total=len(repos), file=sys.stderr, unit="repo", dynamic_ncols=True, desc="download") as bar:
            forward = _forwarding_bar(bar)
            for i, repo in enumerate(repos):
                bar.set_postfix_str(repo.repo_id)
                dest = root / repo.repo_id if repo.repo_type == "dataset" and root is not None else None
                if dest is not None and is_complete(dest, repo):
                    skipped += 1
                else:
                    try:
                        if dest is not None:
                            drop_damaged(dest)
                        path = _fetch(repo, dest, forward)
                        if dest is not None:
                            mark_complete(dest, repo)
                            fetched += 1
                            if loading_script(dest) is not None:
                                scripts.append(repo.why)
                        else:  # the hub's cache skips files it holds for the resolved commit
                            models.append(f"model {repo.repo_id}: {path}")
                    except Exception as exc:  # noqa: BLE001 - report each repository, go on with the others
                        failed[repo.label] = _why(exc)
                bar.n = i + 1  # whole units again, whatever fractions the files added
                bar.refresh()
    finally:
        if not bars_were_off:
            enable_progress_bars()
    for line in models:
        print(line, file=sys.stderr)
    for task in scripts:
        print(
            f"note: {task}: its dataset repository at the pinned revision is a loading script, which "
            "`run --data_dir` refuses to execute; that task still needs the hub or a data-file copy",
            file=sys.stderr,
        )
    for label, why in failed.items():
        print(f"failed: {label}: {why}", file=sys.stderr)
    where = f" into {root}" if root is not None else ""
    tail = "; rerun the same command to resume" if failed else ""
    print(
        f"download: {fetched} dataset repositories fetched, {skipped} already complete, {len(failed)} failed"
        f"{where}{tail}",
        file=sys.stderr,
    )
    return len(failed)
