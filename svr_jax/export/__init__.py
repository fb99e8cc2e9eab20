"""Dataset export: sharded Parquet (+ a JSONL/image-folder view), manifest, verify, dataset card."""
