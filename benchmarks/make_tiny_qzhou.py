"""Build the tiny QZhou-shaped checkpoint the tests use (2 layers, hidden 64), e.g. for gpu_check.sh.

python benchmarks/make_tiny_qzhou.py OUT_DIR
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixture_models import build_qwen2  # noqa: E402

if __name__ == "__main__":
    print(build_qwen2(Path(sys.argv[1]), "QZhouModel"))
