"""qzhou-eval: reproduce MTEB(eng, v2) and C-MTEB leaderboard scores for any Hugging Face embedder."""

__version__ = "0.2.0"
