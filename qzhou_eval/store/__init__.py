"""store: what is on disk. Manifest, result files, resume, embedding cache, per-example records, locks."""
