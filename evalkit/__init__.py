"""evalkit: evaluation harness, leaderboard and training kit for chest X-ray vision-language models."""

from __future__ import annotations

from typing import Any

from evalkit import _aliases
from evalkit._version import __version__
from evalkit.errors import EvalkitError

_aliases.install()  # old module paths (evalkit.runner, training, ...) for one release

__all__ = ["EvalkitError", "__version__", "compare_systems", "evaluate", "score_reports"]


def __getattr__(name: str) -> Any:
    # `evalkit.evaluate` and `evalkit.score_reports` are imported on first use, so that `import evalkit` (and the
    # CLI) stays light.
    if name == "evaluate":
        from evalkit.run.evaluate import evaluate

        return evaluate
    if name == "score_reports":
        from evalkit.run.pairs import score_reports

        return score_reports
    if name == "compare_systems":
        from evalkit.run.pair_compare import compare_systems

        return compare_systems
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
