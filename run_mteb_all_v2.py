"""Evaluate an embedding model on MTEB(eng, v2) (41 tasks) with the QZhou-Embedding reference setup."""

from qzhou_eval.cli import main

if __name__ == "__main__":
    raise SystemExit(main(benchmark="MTEB(eng, v2)"))
