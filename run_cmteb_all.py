"""Evaluate an embedding model on C-MTEB, MTEB(cmn, v1) (31 tasks), with the QZhou-Embedding reference setup."""

from qzhou_eval.cli import main

if __name__ == "__main__":
    raise SystemExit(main(benchmark="MTEB(cmn, v1)"))
