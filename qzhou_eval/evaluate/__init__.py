"""evaluate: the mteb side. Tasks and data, the per-task plan, the mteb adapter, the runner, shards, sizes."""
