"""Resampling statistics over stored per-sample scores: bootstrap CIs, paired tests, Holm correction.

Nothing here re-runs a model or a metric's `score`: every resample re-aggregates stored numbers. A resample is a
row of counts (how often each sample is drawn), so for any metric whose aggregate is a function of column sums
(`Metric.sufficient_matrix` / `Metric.from_sums`: every mean metric, corpus BLEU, CheXbert-style micro F1) a
block of resamples is one matrix product. Other corpus metrics either take a whole block at once through their
batch hooks (`Metric.aggregate_resamples`, `Metric.aggregate_swaps`: COCO AP, CIDEr-D) or fall back to
`Metric.aggregate` once per resample, with the same resamples.

Conventions:
- The unit of resampling is the sample's cluster (`Sample.cluster`: patient, else study, else image), the unit the
  data set drew: a resample draws clusters with replacement and takes all their samples, and a permutation swaps
  A/B for all samples of a cluster at once. Both still come out as per-sample matrices (counts, swaps), so every
  metric path (sums, batch, generic) consumes them unchanged. `cluster="none"` resamples samples (iid).
- CIs are percentile bootstrap intervals (default 95%, 10,000 resamples), seeded; metrics scored on the same
  samples share the same resamples, so a CI does not depend on which other metrics were asked for.
- Paired comparisons use only the samples both runs scored for that metric; `delta` is A − B in the metric's own
  units and direction (RadCliQ stays lower-is-better; nothing is inverted).
- Paired bootstrap p-value: two-sided, from the bootstrap distribution of the delta shifted to the null,
  (1 + #{|δ* − δ| ≥ |δ|}) / (B + 1). Approximate randomisation: each sample's two outputs are swapped with
  probability 1/2 (a sign flip for mean metrics), p = (1 + #{|δ_perm| ≥ |δ|}) / (P + 1).
- Holm's step-down adjustment across the metrics of one comparison.
- Few clusters: with at most `EXACT_MAX_CLUSTERS` clusters the permutation test enumerates all 2^G swap patterns
  and its p is exact, #{|δ_perm| ≥ |δ|} / 2^G (never below 2 / 2^G: 0.0625 for 5 pairs). Below `FEW_CLUSTERS`
  the bootstrap p is unreliable (it can reach 1 / (B + 1) on 5 pairs): a comparison says so, and "better"
  follows the permutation p there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from evalkit.errors import EvalkitError
from evalkit.metrics.base import Metric

DEFAULT_N_BOOT = 10_000
DEFAULT_LEVEL = 0.95
# Display uses (leaderboard, site) give metrics on the slow generic path at most this many resamples.
DISPLAY_MAX_GENERIC = 500
# Resamples per block: keeps a block's (resamples x samples) count matrix near 64 MB.
_BLOCK_CELLS = 8_000_000
# Up to this many clusters the permutation test enumerates every swap pattern (2^13 = 8,192) instead of sampling.
EXACT_MAX_CLUSTERS = 13
# Below this many clusters the paired bootstrap p is not trusted: "better" follows the permutation p.
FEW_CLUSTERS = 20


# --- one metric's stored data, ready to be resampled ------------------------------------------------------------
class Resampler:
    """One (run, metric)'s per-sample values and statistics, re-aggregated under resampling weights."""

    def __init__(self, metric: Metric, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> None:
        self.metric = metric
        self.values = list(values)
        self.stats = list(stats)
        self.matrix: np.ndarray | None
        try:
            matrix = metric.sufficient_matrix(self.values, self.stats)
        except (KeyError, TypeError, ValueError, IndexError):
            matrix = None  # malformed stats on some row: the generic path reports what aggregate makes of them
        self.matrix = None if matrix is None else np.asarray(matrix, dtype=float).reshape(len(self.values), -1)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def vectorised(self) -> bool:
        return self.matrix is not None

    def point(self) -> float:
        """The aggregate over all samples, by the metric's own `aggregate` (the leaderboard's number)."""
        try:
            return float(self.metric.aggregate(self.values, self.stats))
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
            return float("nan")

    def subset(self, index: np.ndarray) -> Resampler:
        clone = object.__new__(Resampler)
        clone.metric = self.metric
        clone.values = [self.values[i] for i in index]
        clone.stats = [self.stats[i] for i in index]
        clone.matrix = None if self.matrix is None else self.matrix[index]
        return clone

    def aggregate_at(self, index: np.ndarray) -> float:
        """Generic path: `aggregate` on the samples at `index` (with repeats)."""
        try:
            return float(self.metric.aggregate([self.values[i] for i in index], [self.stats[i] for i in index]))
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
            return float("nan")


def _n_clusters(n: int, groups: np.ndarray | None) -> int:
    return n if groups is None else int(groups.max()) + 1 if groups.size else 0


def cluster_counts(rng: np.random.Generator, n: int, size: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Bootstrap counts (size, n), float64: each row draws clusters with replacement and takes all their samples.

    `groups[i]` is sample i's cluster code (0..G-1); None means every sample is its own cluster, and then the
    draws are exactly the iid bootstrap's.
    """
    g = _n_clusters(n, groups)
    draws = rng.integers(0, g, size=(size, g))
    draws += (np.arange(size) * g)[:, None]
    counts = np.bincount(draws.ravel(), minlength=size * g).reshape(size, g).astype(float)
    return counts if groups is None else np.take(counts, groups, axis=1)  # np.take: a third of `[:, groups]`'s time


def all_swaps(n: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Every swap pattern of the clusters (2^G, n), 0/1 float, the unswapped one first: exact enumeration."""
    g = _n_clusters(n, groups)
    patterns = ((np.arange(2**g)[:, None] >> np.arange(g)) & 1).astype(float)
    return patterns if groups is None else patterns[:, groups]


def cluster_swaps(rng: np.random.Generator, n: int, size: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Permutation swaps (size, n), 0/1 float: each cluster's A/B outputs swap together with probability 1/2."""
    swap = (rng.random((size, _n_clusters(n, groups))) < 0.5).astype(float)
    return swap if groups is None else np.take(swap, groups, axis=1)


def _bootstrap_blocks(
    rng: np.random.Generator, n: int, n_boot: int, groups: np.ndarray | None = None
) -> Iterator[np.ndarray]:
    """Blocks of bootstrap count matrices, float64 (block, n); row b says how often each sample is drawn."""
    block = max(1, min(n_boot, _BLOCK_CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        size = min(block, n_boot - done)
        yield cluster_counts(rng, n, size, groups)
        done += size


def _indices_from_counts(counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(counts.shape[0]), counts.astype(np.int64))


def _stack(resamplers: Sequence[Resampler]) -> tuple[np.ndarray | None, list[slice]]:
    """Side by side matrices of the vectorised resamplers, and each one's column slice."""
    slices, columns, start = [], [], 0
    for r in resamplers:
        if r.matrix is None:
            slices.append(slice(0, 0))
            continue
        k = r.matrix.shape[1]
        slices.append(slice(start, start + k))
        columns.append(r.matrix)
        start += k
    return (np.hstack(columns) if columns else None), slices


def bootstrap_distribution(
    resamplers: Sequence[Resampler],
    n_boot: int,
    seed: int,
    max_generic: int | None = None,
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Bootstrap replicates (n_boot,) of each resampler's aggregate; all on the same samples and resamples.

    `groups`: each sample's cluster code (see `cluster_counts`); None resamples samples.

    `max_generic` caps the resamples of metrics on the slow generic path (the rest stay NaN and are ignored by
    `percentile_interval`); they are the first resamples of the same stream, so the fast metrics are unaffected.
    """
    check_resampling(n_boot=n_boot)
    n = resamplers[0].n
    if any(r.n != n for r in resamplers):
        raise ValueError("resamplers of one bootstrap must hold the same samples")
    rng = np.random.default_rng(seed)
    out = [np.empty(n_boot) for _ in resamplers]
    matrix, slices = _stack(resamplers)
    done = 0
    for counts in _bootstrap_blocks(rng, n, n_boot, groups):
        size = counts.shape[0]
        sums = counts @ matrix if matrix is not None else None
        generic = []
        for j, r in enumerate(resamplers):
            if r.vectorised:
                out[j][done : done + size] = r.metric.from_sums(sums[:, slices[j]])
                continue
            batch = r.metric.aggregate_resamples(r.values, r.stats, counts)
            if batch is not None:
                out[j][done : done + size] = batch
            else:
                generic.append(j)
        limit = size if max_generic is None else max(0, min(size, max_generic - done))
        for b in range(size):
            index = _indices_from_counts(counts[b]) if generic and b < limit else None
            for j in generic:
                out[j][done + b] = resamplers[j].aggregate_at(index) if index is not None else np.nan
        done += size
    return out


def paired_bootstrap_distribution(
    pairs: Sequence[tuple[Resampler, Resampler]], n_boot: int, seed: int, groups: np.ndarray | None = None
) -> list[np.ndarray]:
    """Bootstrap replicates of aggregate(A) − aggregate(B), the same resample applied to both runs."""
    flat = [r for pair in pairs for r in pair]
    reps = bootstrap_distribution(flat, n_boot, seed, groups=groups)
    return [reps[2 * j] - reps[2 * j + 1] for j in range(len(pairs))]


def permutation_distribution(
    pairs: Sequence[tuple[Resampler, Resampler]],
    n_perm: int,
    seed: int,
    groups: np.ndarray | None = None,
    swaps: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Approximate randomisation: deltas after swapping each cluster's A/B outputs with probability 1/2; with
    `swaps` (all_swaps), the deltas of exactly those patterns instead."""
    n = pairs[0][0].n
    rng = np.random.default_rng(seed)
    n_perm = n_perm if swaps is None else len(swaps)
    out = [np.empty(n_perm) for _ in pairs]
    block = max(1, min(n_perm, _BLOCK_CELLS // max(n, 1)))
    vector = [j for j, (a, b) in enumerate(pairs) if a.vectorised and b.vectorised]
    if vector:
        diff = np.hstack([pairs[j][1].matrix - pairs[j][0].matrix for j in vector])  # type: ignore[operator]
        tot_a = np.concatenate([pairs[j][0].matrix.sum(axis=0) for j in vector])  # type: ignore[union-attr]
        tot_b = np.concatenate([pairs[j][1].matrix.sum(axis=0) for j in vector])  # type: ignore[union-attr]
        widths = [pairs[j][0].matrix.shape[1] for j in vector]  # type: ignore[union-attr]
        bounds = np.cumsum([0, *widths])
    generic = {j: _object_columns(a, b) for j, (a, b) in enumerate(pairs) if j not in vector}
    batched = {j for j in generic if _has_swap_path(pairs[j][0])}
    done = 0
    while done < n_perm:
        size = min(block, n_perm - done)
        swap = cluster_swaps(rng, n, size, groups) if swaps is None else swaps[done : done + size]
        if vector:
            moved = swap @ diff  # what sample swaps move from A's sums to B's
            sums_a, sums_b = tot_a + moved, tot_b - moved
            for k, j in enumerate(vector):
                cols = slice(bounds[k], bounds[k + 1])
                metric = pairs[j][0].metric
                out[j][done : done + size] = metric.from_sums(sums_a[:, cols]) - metric.from_sums(sums_b[:, cols])
        for j in generic:
            values_a, values_b, stats_a, stats_b = generic[j]
            metric = pairs[j][0].metric
            if j in batched:
                a, b = pairs[j]
                sides = metric.aggregate_swaps(a.values, a.stats, b.values, b.stats, swap)
                if sides is not None:
                    out[j][done : done + size] = sides[0] - sides[1]
                    continue
            for row in range(size):
                flip = swap[row] > 0
                out[j][done + row] = metric.aggregate(
                    np.where(flip, values_b, values_a).tolist(), np.where(flip, stats_b, stats_a).tolist()
                ) - metric.aggregate(
                    np.where(flip, values_a, values_b).tolist(), np.where(flip, stats_a, stats_b).tolist()
                )
        done += size
    return out


def _has_swap_path(r: Resampler) -> bool:
    return type(r.metric).aggregate_swaps is not Metric.aggregate_swaps


def _object_columns(a: Resampler, b: Resampler) -> tuple[np.ndarray, ...]:
    columns = []
    for items in (a.values, b.values, a.stats, b.stats):
        column = np.empty(len(items), dtype=object)
        column[:] = items
        columns.append(column)
    return tuple(columns)


# --- small pure helpers ---------------------------------------------------------------------------------------
def check_resampling(n_boot: int | None = None, level: float | None = None, n_perm: int | None = None) -> None:
    """Refuse resample counts and confidence levels that would give a number that means nothing (NaN compares
    false with every bound, so an unchecked NaN level or margin silently passes any test)."""
    for name, count, least in (("n_boot", n_boot, 1), ("n_perm", n_perm, 0)):
        if count is not None and (isinstance(count, bool) or not isinstance(count, int | np.integer) or count < least):
            raise EvalkitError(f"{name} must be a whole number >= {least}, not {count!r}")
    if level is not None and not (isinstance(level, int | float) and math.isfinite(level) and 0 < level < 1):
        raise EvalkitError(f"level must be a confidence level strictly between 0 and 1 (e.g. 0.95), not {level!r}")


def percentile_interval(replicates: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    check_resampling(level=level)
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _tolerance(observed: float) -> float:
    # Resampled deltas equal to the observed one up to float rounding count as "as extreme".
    return 1e-12 * max(1.0, abs(observed))


def bootstrap_p_value(replicates: np.ndarray, observed: float) -> float:
    """Two-sided p for H0: delta = 0, from the bootstrap distribution shifted to the null."""
    finite = replicates[np.isfinite(replicates)]
    if not np.isfinite(observed) or finite.size == 0:
        return float("nan")
    extreme = np.abs(finite - observed) >= abs(observed) - _tolerance(observed)
    return float((1 + extreme.sum()) / (finite.size + 1))


def permutation_p_value(replicates: np.ndarray, observed: float) -> float:
    finite = replicates[np.isfinite(replicates)]
    if not np.isfinite(observed) or finite.size == 0:
        return float("nan")
    extreme = np.abs(finite) >= abs(observed) - _tolerance(observed)
    return float((1 + extreme.sum()) / (finite.size + 1))


def exact_permutation_p_value(replicates: np.ndarray, observed: float) -> float:
    """p over every swap pattern (the observed one among them): #{|δ_perm| ≥ |δ|} / 2^G."""
    finite = replicates[np.isfinite(replicates)]
    if not np.isfinite(observed) or finite.size == 0:
        return float("nan")
    return float((np.abs(finite) >= abs(observed) - _tolerance(observed)).sum() / finite.size)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given); NaN stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


# --- the unit of resampling -----------------------------------------------------------------------------------
CLUSTER_CHOICES = ("auto", "none", "image", "study", "patient")


def unit_text(unit: str, n_clusters: int) -> str:
    """'by patient (212 clusters)' / 'by sample (iid)': how every printed interval says what was resampled."""
    return "by sample (iid)" if unit == "sample" else f"by {unit} ({n_clusters} clusters)"


@dataclass
class Clustering:
    """How one task's samples group into resampling units.

    `unit` names the unit for printing ('patient', 'study', 'image', 'sample' for iid, 'cluster' when the stored
    keys match none of the named units); `keys` maps sample id -> cluster key (a sample without one is its own).
    """

    unit: str = "sample"
    keys: dict[str, str] = field(default_factory=dict)

    def groups(self, sample_ids: Sequence[str]) -> np.ndarray | None:
        """Cluster codes (n,) of these samples; None when every sample is its own cluster (the iid draws)."""
        if not self.keys:
            return None
        _, codes = np.unique([self.keys.get(sid) or f"sample:{sid}" for sid in sample_ids], return_inverse=True)
        return None if codes.size == 0 or codes.max() + 1 == codes.size else codes.astype(np.int64)

    def count(self, sample_ids: Sequence[str]) -> int:
        """How many clusters these samples form."""
        groups = self.groups(sample_ids)
        return len(sample_ids) if groups is None else int(groups.max()) + 1

    def describe(self, sample_ids: Sequence[str]) -> str:
        """'by patient (212 clusters)' / 'by sample (iid)': what every printed interval states."""
        return unit_text(self.unit, self.count(sample_ids))


# --- reading the store ----------------------------------------------------------------------------------------
@dataclass
class MetricScores:
    """Stored per-sample scores of one (run, metric), ordered by sample id."""

    metric: str
    sample_ids: list[str]
    values: list[float | None]
    stats: list[dict[str, Any]]


# --- confidence intervals per (run, metric) --------------------------------------------------------------------
@dataclass
class Interval:
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    level: float
    n_boot: int
    vectorised: bool
    unit: str = "sample"  # what was resampled
    n_clusters: int = 0


def intervals(
    scores: dict[str, MetricScores],
    metrics: dict[str, Metric],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    max_generic: int | None = None,
    clustering: Clustering | None = None,
) -> dict[str, Interval]:
    """Bootstrap CIs of each metric's aggregate; metrics on the same samples share resamples.

    `max_generic`: at most this many resamples for metrics without a vectorised path (display uses; the CI of
    such a metric then rests on fewer resamples, recorded in `Interval.n_boot`).
    """
    check_resampling(n_boot=n_boot, level=level)
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, s in scores.items():
        if s.sample_ids:
            groups.setdefault(tuple(s.sample_ids), []).append(name)
    clustering = clustering or Clustering()
    out: dict[str, Interval] = {}
    for ids, names in groups.items():
        resamplers = [Resampler(metrics[name], scores[name].values, scores[name].stats) for name in names]
        codes = clustering.groups(ids)
        replicates = bootstrap_distribution(resamplers, n_boot, seed, max_generic, codes)
        g = _n_clusters(len(ids), codes)
        for name, r, reps in zip(names, resamplers, replicates, strict=True):
            low, high = percentile_interval(reps, level)
            if r.metric.ci_needs_every_resample and not np.isfinite(reps).all():
                low = high = float("nan")  # some resample has no value (e.g. 1/mean with the mean at <= 0)
            used = int(np.isfinite(reps).sum()) if not r.vectorised else n_boot
            out[name] = Interval(name, r.point(), low, high, r.n, level, used, r.vectorised, clustering.unit, g)
    return out


# --- paired comparison of two runs ----------------------------------------------------------------------------
@dataclass
class Comparison:
    """Run A versus run B on one metric, over the samples both scored."""

    metric: str
    higher_is_better: bool
    n_shared: int
    value_a: float
    value_b: float
    delta: float  # A − B in the metric's units
    ci_low: float
    ci_high: float
    p_bootstrap: float
    p_permutation: float
    p_bootstrap_holm: float = float("nan")
    p_permutation_holm: float = float("nan")
    vectorised: bool = True
    unit: str = "sample"  # what the bootstrap and the permutations resampled
    n_clusters: int = 0
    exact_permutation: bool = False  # every swap pattern enumerated (few clusters): p_permutation is exact

    @property
    def few_clusters(self) -> bool:
        """Too few clusters for the bootstrap p (it can go far below what the permutation test allows)."""
        return self.n_clusters < FEW_CLUSTERS

    def better(self, alpha: float = 0.05) -> str | None:
        """'A' or 'B' when the Holm-adjusted p is below alpha, in the metric's direction, else None; the
        bootstrap p decides, or the permutation p when there are few clusters."""
        p = self.p_permutation_holm if self.few_clusters else self.p_bootstrap_holm
        if not np.isfinite(p) or p >= alpha or self.delta == 0:
            return None
        return "A" if (self.delta > 0) == self.higher_is_better else "B"

    def to_json(self) -> dict[str, Any]:
        out = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}
        return {**out, "few_clusters": self.few_clusters, "better": self.better()}


@dataclass
class PairedData:
    """Both runs' stored scores of one metric, restricted to the shared samples, aligned by sample id."""

    metric: str
    a: Resampler
    b: Resampler
    sample_ids: list[str] = field(default_factory=list)
    clustering: Clustering = field(default_factory=Clustering)

    @property
    def groups(self) -> np.ndarray | None:
        return self.clustering.groups(self.sample_ids)


def pair_scores(
    scores_a: dict[str, MetricScores],
    scores_b: dict[str, MetricScores],
    metrics: dict[str, Metric],
    names: Sequence[str] | None = None,
    clustering: Clustering | None = None,
) -> list[PairedData]:
    """Align two runs' scores on their shared samples, per metric (a metric's failures can differ per run)."""
    clustering = clustering or Clustering()
    out = []
    for name in names if names is not None else [m for m in scores_a if m in scores_b]:
        if name not in scores_a or name not in scores_b:
            continue
        sa, sb = scores_a[name], scores_b[name]
        index_b = {sid: i for i, sid in enumerate(sb.sample_ids)}
        shared = [(i, index_b[sid]) for i, sid in enumerate(sa.sample_ids) if sid in index_b]
        ia = np.array([i for i, _ in shared], dtype=np.int64)
        ib = np.array([j for _, j in shared], dtype=np.int64)
        ra = Resampler(metrics[name], sa.values, sa.stats).subset(ia)
        rb = Resampler(metrics[name], sb.values, sb.stats).subset(ib)
        out.append(PairedData(name, ra, rb, [sa.sample_ids[i] for i in ia], clustering))
    return out


def compare_paired(
    paired: Sequence[PairedData],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    n_perm: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> list[Comparison]:
    """Paired bootstrap CI and p-value, approximate-randomisation p-value, Holm across the metrics."""
    check_resampling(n_boot=n_boot, level=level, n_perm=n_perm)
    results: dict[str, Comparison] = {}
    groups: dict[tuple[str, ...], list[PairedData]] = {}
    for p in paired:
        if p.sample_ids:
            groups.setdefault(tuple(p.sample_ids), []).append(p)
    for group in groups.values():
        pairs = [(p.a, p.b) for p in group]
        codes = group[0].groups
        boot = paired_bootstrap_distribution(pairs, n_boot, seed, codes)
        n_clusters = _n_clusters(group[0].a.n, codes)
        exact = 0 < n_perm and n_clusters <= EXACT_MAX_CLUSTERS
        swaps = all_swaps(group[0].a.n, codes) if exact else None
        perm = (
            permutation_distribution(pairs, n_perm, seed + 1, codes, swaps)
            if n_perm > 0
            else [np.array([])] * len(pairs)
        )
        permutation_p = exact_permutation_p_value if exact else permutation_p_value
        for p, reps, perms in zip(group, boot, perm, strict=True):
            value_a, value_b = p.a.point(), p.b.point()
            delta = value_a - value_b
            low, high = percentile_interval(reps, level)
            if p.a.metric.ci_needs_every_resample and not np.isfinite(reps).all():
                low = high = float("nan")  # as in `intervals`: some resample has no value
            results[p.metric] = Comparison(
                metric=p.metric,
                higher_is_better=p.a.metric.higher_is_better,
                n_shared=p.a.n,
                value_a=value_a,
                value_b=value_b,
                delta=delta,
                ci_low=low,
                ci_high=high,
                p_bootstrap=bootstrap_p_value(reps, delta),
                p_permutation=permutation_p(perms, delta) if n_perm > 0 else float("nan"),
                vectorised=p.a.vectorised and p.b.vectorised,
                unit=p.clustering.unit,
                n_clusters=n_clusters,
                exact_permutation=exact,
            )
    ordered = [results[p.metric] for p in paired if p.metric in results]
    for key in ("p_bootstrap", "p_permutation"):
        for c, adjusted in zip(ordered, holm([getattr(c, key) for c in ordered]), strict=True):
            setattr(c, f"{key}_holm", adjusted)
    return ordered
