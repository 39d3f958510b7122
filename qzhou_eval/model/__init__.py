"""model: how to embed. Tokenizer ids in, float32 vectors out: weights, pooling, runners, batching, workers."""
