"""Model adapters: one protocol, several back ends (baselines, transformers, vLLM, OpenAI-compatible servers)."""
