"""Benchmarks: ingest throughput and latency, footprint, forecast quality (see README)."""
