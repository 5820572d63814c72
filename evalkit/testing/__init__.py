"""Builders of tiny random-weight models with real architectures, for tests, parity fixtures, benchmarks and the
CPU demo. Nothing here is evaluation code: numbers from these weights mean nothing clinically.

`tiny_qwen3vl` builds a Qwen3-VL checkpoint (the demo's `tiny-qwen3vl` and the training recipe's base model);
`tiny_clinical` writes CheXbert, RadGraph, BERTScore and RadCliQ models for the clinical metrics' tests.
"""
