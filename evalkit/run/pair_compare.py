"""Two systems on the same references, without a task: `evalkit.compare_systems` and `evalkit compare --pairs`.

Both systems' pairs are scored with `score_reports` (the metrics and caches the runner uses); the comparison is
`evalkit.stats.compare_paired` on the per-pair statistics: a paired bootstrap CI of A − B and its p, and the
permutation test (every swap pattern when there are few pairs, so its p is exact). Each pair is its own unit.
Below `FEW_CLUSTERS` pairs the bootstrap p is unreliable: the result says so and "better" follows the
permutation p.

    >>> from evalkit import compare_systems
    >>> rows = compare_systems(refs, preds_a, preds_b, metrics=["rouge_l"])  # doctest: +SKIP
    >>> rows[0].p_permutation, rows[0].better()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.stats import DEFAULT_LEVEL, DEFAULT_N_BOOT, Comparison, PairedData, Resampler, compare_paired


def compare_systems(
    references: Sequence[str],
    predictions_a: Sequence[str],
    predictions_b: Sequence[str],
    metrics: Sequence[str] | None = None,
    *,
    options: dict[str, dict[str, Any]] | None = None,
    db: str | Path | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    n_perm: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> list[Comparison]:
    """Compare system A with system B on the same references, per metric.

    Args:
        references: Reference reports.
        predictions_a: System A's reports, one per reference.
        predictions_b: System B's reports, one per reference.
        metrics: Report metric names (default: `evalkit.run.pairs.DEFAULT_METRICS`; unavailable ones are left out).
        options: Per-metric options, as for `score_reports`.
        db: A results database for the compute-once caches.
        n_boot: Paired bootstrap resamples.
        n_perm: Random permutations (0: skip); with few pairs every swap pattern is enumerated instead.
        seed: Seed of the resamples and permutations.
        level: Confidence level of the CI.

    Returns:
        One `Comparison` per metric (delta = A − B, CI, bootstrap and permutation p, Holm-adjusted; `better()`).
    """
    from evalkit.run.pairs import score_reports

    if not len(references) == len(predictions_a) == len(predictions_b):
        raise EvalkitError(
            f"{len(references)} references but {len(predictions_a)} predictions from A and "
            f"{len(predictions_b)} from B; both systems need one prediction per reference"
        )
    if not references:
        raise EvalkitError("no pairs to compare")
    scored_a = score_reports(references, predictions_a, metrics, options=options, db=db)
    scored_b = score_reports(references, predictions_b, metrics, options=options, db=db)
    ids = [str(i) for i in range(len(references))]
    paired = []
    for name in scored_a.metrics:
        if name not in scored_b.metrics:
            continue
        sides = []
        for scored in (scored_a, scored_b):
            values = [row.get(name) for row in scored.per_sample]
            sides.append(Resampler(scored.instances[name], values, scored.stats[name]))
        paired.append(PairedData(name, sides[0], sides[1], ids))
    if not paired:
        reasons = "; ".join(f"{k}: {v}" for k, v in scored_a.unavailable.items())
        raise EvalkitError(f"no metric could run here ({reasons or 'none asked for'})")
    return compare_paired(paired, n_boot=n_boot, n_perm=n_perm, seed=seed, level=level)


def read_two_systems(
    path_a: Path, path_b: Path, fmt: str = "auto", preset: str | None = None
) -> tuple[list[str], list[str], list[str]]:
    """(references, A's predictions, B's predictions) from two pair files holding the same references in order."""
    from evalkit.readers import read_pairs_file, resolve_fields

    layout = resolve_fields(preset)
    refs_a, preds_a = read_pairs_file(path_a, fmt, layout)
    refs_b, preds_b = read_pairs_file(path_b, fmt, layout)
    if len(refs_a) != len(refs_b):
        raise EvalkitError(
            f"{path_a} has {len(refs_a)} pairs but {path_b} has {len(refs_b)}; both systems must answer the same "
            "references, in the same order"
        )
    for i, (ra, rb) in enumerate(zip(refs_a, refs_b, strict=True)):
        if ra != rb:
            raise EvalkitError(
                f"{path_a} and {path_b} differ at pair {i + 1} (reference {ra[:40]!r} vs {rb[:40]!r}); both systems "
                "must answer the same references, in the same order"
            )
    return refs_a, preds_a, preds_b
