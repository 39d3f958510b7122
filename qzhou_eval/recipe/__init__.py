"""recipe: what to run, decided once from flags, presets and a checkpoint's own files. Never loads weights."""
