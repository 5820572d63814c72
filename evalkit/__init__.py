"""evalkit: evaluation harness, leaderboard and training kit for chest X-ray vision-language models."""

__version__ = "0.1.0"

from evalkit.errors import EvalkitError

__all__ = ["EvalkitError", "__version__"]
