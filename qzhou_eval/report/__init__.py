"""report: what runs wrote, read back: leaderboard tables, deltas to published scores, paired comparisons, plots."""
