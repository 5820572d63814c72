"""Image-reliance scores: how much of a model's score comes from the image (docs/image-reliance.md).

Every number compares two stored runs of one model on the same samples, the task `T` and a derived task
`T@NAME` (evalkit/transforms), with the paired, clustered bootstrap of evalkit/stats.py:

- `drop`: each metric's loss from `T` to `T@blank|noise|shuffle|hflip`, in the metric's direction (positive:
  worse on the transformed image). A model that ignores the image has drops near 0.
- `shuffle agreement`: on `T@shuffle`, agreement of the answer with the *other* study's reference minus its
  own (ROUGE-L for reports, IoU soft-F1 for boxes). Positive: the answer follows the image it was shown.
- `flip equivariance` (grounding): IoU soft-F1 of the answer on the mirrored image with the mirrored answer on
  the original, minus with the unmirrored answer. Positive: boxes follow the flip; negative: they stay put.
- `boxes on blank` (grounding): share of answers giving a box on the blank image, minus on the original.
- `findings on blank` (reports): share of answers asserting a finding on the blank image, minus on the
  original, where the answers' labels are known (an exact reference report of the data set; no labeller).
Every row names what it compares (`a` vs `b`) so a table is read without this docstring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evalkit.config import TRANSFORM_NAMES
from evalkit.errors import EvalkitError
from evalkit.metrics.grounding import soft_f1_iou
from evalkit.results.aggregates import StoredMean
from evalkit.results.scores import find_run, load_clustering, load_pairs
from evalkit.results.store import Store
from evalkit.results.variants import parsed_answers, stored_samples
from evalkit.sample import Box, Parsed, Sample
from evalkit.stats import DEFAULT_N_BOOT, Clustering, PairedData, Resampler, compare_paired
from evalkit.transforms.samples import mirror_box
from evalkit.transforms.tasks import SEPARATOR

NO_FINDING = "No Finding"


@dataclass
class RelianceRow:
    """One reliance number: `value` = a − b (drops: original − transformed, in the metric's direction)."""

    task: str
    model: str
    transform: str
    score: str  # drop | shuffle agreement | flip equivariance | boxes on blank | findings on blank
    metric: str
    a: str  # what `value_a` is
    b: str
    value_a: float | None = None
    value_b: float | None = None
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    unit: str = "sample"
    n_clusters: int = 0
    higher_is_better: bool = True
    unavailable: str | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None and (self.ci_low > 0 or self.ci_high < 0)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci_excludes_0"] = self.excludes_zero
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def variant_task(task: str, transform: str) -> str:
    return f"{task}{SEPARATOR}{transform}"


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _paired_row(
    base: dict[str, Any],
    transform: str,
    score: str,
    metric: str,
    labels: tuple[str, str],
    per_sample: Mapping[str, tuple[float, float]],
    clustering: Clustering,
    n_boot: int,
    seed: int,
) -> RelianceRow:
    """mean(a) − mean(b) over samples with both values, CI from the clustered paired bootstrap."""
    row = RelianceRow(base["task"], base["model"], transform, score, metric, *labels)
    ids = sorted(per_sample)
    if not ids:
        row.unavailable = "no sample has both values"
        return row
    mean = StoredMean(score)
    a = Resampler(mean, [per_sample[i][0] for i in ids], [{}] * len(ids))
    b = Resampler(mean, [per_sample[i][1] for i in ids], [{}] * len(ids))
    (c,) = compare_paired([PairedData(score, a, b, ids, clustering)], n_boot=n_boot, n_perm=0, seed=seed)
    row.value_a, row.value_b, row.value = _finite(c.value_a), _finite(c.value_b), _finite(c.delta)
    row.ci_low, row.ci_high, row.n = _finite(c.ci_low), _finite(c.ci_high), c.n_shared
    row.unit, row.n_clusters = c.unit, c.n_clusters
    return row


def metric_drops(
    store: Store,
    base: dict[str, Any],
    variant: dict[str, Any],
    transform: str,
    *,
    n_boot: int,
    seed: int,
    cluster: str,
    metrics: Sequence[str] | None = None,
) -> list[RelianceRow]:
    """Each shared metric's drop from the original run to the variant's (the compare machinery, A = original)."""
    paired = load_pairs(store, base["task"], base, variant, metrics, cluster)
    rows = []
    for c in compare_paired(paired, n_boot=n_boot, n_perm=0, seed=seed):
        sign = 1.0 if c.higher_is_better else -1.0
        low, high = sorted((sign * c.ci_low, sign * c.ci_high))
        row = RelianceRow(base["task"], base["model"], transform, "drop", c.metric, "original", transform)
        row.value_a, row.value_b, row.value = _finite(c.value_a), _finite(c.value_b), _finite(sign * c.delta)
        row.ci_low, row.ci_high, row.n = _finite(low), _finite(high), c.n_shared
        row.unit, row.n_clusters, row.higher_is_better = c.unit, c.n_clusters, c.higher_is_better
        rows.append(row)
    return rows


def _boxes(parsed: dict[str, Any]) -> list[Box]:
    return Parsed.from_json(parsed).boxes


def _prompt_key(sample: Sample) -> str:
    return "|".join(f"{k}={sample.prompt_vars[k]}" for k in sorted(sample.prompt_vars))


def shuffle_agreement(
    store: Store, base: dict[str, Any], variant: dict[str, Any], kind: str
) -> tuple[str, dict[str, tuple[float, float]]]:
    """(metric, sample id -> (agreement with the shown study's reference, with its own)) on `T@shuffle`."""
    own = stored_samples(store, base["task"])
    shown = stored_samples(store, variant["task"])
    answers = parsed_answers(store, variant["run_id"])
    by_image_prompt = {("\n".join(s.image_paths), _prompt_key(s)): s for s in own.values()}
    pairs: dict[str, tuple[Sample, Sample, dict[str, Any]]] = {}
    for sid, answer in answers.items():
        sample = own.get(sid)
        donor_id = shown.get(sid, sample).meta.get("shuffled_from") if sample else None
        donor = own.get(donor_id) if donor_id else None
        if sample is None or donor is None:
            continue
        if kind == "grounding":  # the other study's boxes for the same question, where it has them
            donor = by_image_prompt.get(("\n".join(donor.image_paths), _prompt_key(sample)))
            if donor is None:
                continue
        pairs[sid] = (sample, donor, answer)
    if kind == "grounding":
        return "soft_f1_iou", {
            sid: (soft_f1_iou(_boxes(a), d.reference_boxes)[0], soft_f1_iou(_boxes(a), s.reference_boxes)[0])
            for sid, (s, d, a) in pairs.items()
        }
    from evalkit.metrics import get_metric

    rouge = get_metric("rouge_l")
    ids = sorted(pairs)
    predictions = [Parsed.from_json(pairs[i][2]) for i in ids]
    other = rouge.score(predictions, [pairs[i][1] for i in ids])
    mine = rouge.score(predictions, [pairs[i][0] for i in ids])
    return "rouge_l", {
        i: (float(o.value), float(m.value))
        for i, o, m in zip(ids, other, mine, strict=True)
        if o.value is not None and m.value is not None
    }


def flip_equivariance(store: Store, base: dict[str, Any], variant: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """sample id -> (IoU soft-F1 of the answer on the mirror with the mirrored original answer, with the original
    answer unmirrored), over samples that gave boxes on both images."""
    original = parsed_answers(store, base["run_id"])
    flipped = parsed_answers(store, variant["run_id"])
    out = {}
    for sid, answer in flipped.items():
        before, after = _boxes(original.get(sid, {})), _boxes(answer)
        if before and after:
            mirrored = [mirror_box(b) for b in before]
            out[sid] = (soft_f1_iou(after, mirrored)[0], soft_f1_iou(after, before)[0])
    return out


def boxes_given(store: Store, base: dict[str, Any], variant: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """sample id -> (1 if the answer on the transformed image has a box, same on the original)."""
    original = parsed_answers(store, base["run_id"])
    changed = parsed_answers(store, variant["run_id"])
    return {
        sid: (float(bool(_boxes(a))), float(bool(_boxes(original[sid]))))
        for sid, a in changed.items()
        if sid in original
    }


def positive_findings(labels: Mapping[str, Any]) -> frozenset[str]:
    """CheXpert classes a label dict asserts (1.0 positive, -1.0 uncertain), "No Finding" aside."""
    return frozenset(c for c, v in labels.items() if c != NO_FINDING and v is not None and float(v) != 0.0)


def known_report_labels(samples: Sequence[Sample]) -> dict[str, frozenset[str]]:
    """Reference report text -> the findings it asserts, from samples whose loader ships labels (meta.chexpert)."""
    out = {}
    for s in samples:
        labels = s.meta.get("chexpert")
        if s.reference_text and isinstance(labels, dict):
            out[s.reference_text.strip()] = positive_findings(labels)
    return out


CHEXBERT_14 = ("chexbert_micro_f1_14", "chexbert_macro_f1_14")  # their stats hold the 14 predicted labels


def chexbert_findings(store: Store, run_id: str) -> dict[str, bool] | None:
    """sample id -> whether CheXbert found a finding in the answer, from a run's stored CheXbert scores (the
    `pred` label vector of its 14-label F1 statistics); None when the run has none."""
    from evalkit.chexpert import CHEXPERT_LABELS
    from evalkit.results.scores import load_run_scores

    findings = [i for i, label in enumerate(CHEXPERT_LABELS) if label != NO_FINDING]
    for name in CHEXBERT_14:
        scores = load_run_scores(store, run_id, [name]).get(name)
        if scores and scores.sample_ids:
            return {
                sid: any(stats.get("pred", [0] * len(CHEXPERT_LABELS))[i] for i in findings)
                for sid, stats in zip(scores.sample_ids, scores.stats, strict=True)
                if "pred" in stats
            }
    return None


def findings_asserted(
    store: Store, base: dict[str, Any], variant: dict[str, Any], labels: Mapping[str, frozenset[str]]
) -> tuple[dict[str, tuple[float, float]], int, str]:
    """(sample id -> (asserts a finding on the transformed image, on the original), answers left unlabelled, the
    labeller used).

    With CheXbert scores stored in both runs, their predicted labels say it ("chexbert"). Otherwise an answer is
    labelled only when its text is exactly a labelled reference of the data set ("reference lookup"): copy-paste
    baselines always are, a generating model rarely (then the CheXbert weights are what labels it; see the docs).
    """
    changed_labels, original_labels = (
        chexbert_findings(store, variant["run_id"]),
        chexbert_findings(store, base["run_id"]),
    )
    if changed_labels is not None and original_labels is not None:
        shared = sorted(set(changed_labels) & set(original_labels))
        values = {sid: (float(changed_labels[sid]), float(original_labels[sid])) for sid in shared}
        return values, len(changed_labels) - len(shared), "chexbert"
    original = parsed_answers(store, base["run_id"])
    changed = parsed_answers(store, variant["run_id"])
    out, unlabelled = {}, 0
    for sid, answer in changed.items():
        texts = (Parsed.from_json(answer).answer.strip(), Parsed.from_json(original.get(sid, {})).answer.strip())
        if sid not in original or any(t not in labels for t in texts):
            unlabelled += 1
            continue
        out[sid] = (float(bool(labels[texts[0]])), float(bool(labels[texts[1]])))
    return out, unlabelled, "reference lookup"


def reliance_rows(
    store: Store,
    task: str,
    model: str,
    *,
    kind: str,
    transforms: Sequence[str] = TRANSFORM_NAMES,
    report_labels: Mapping[str, frozenset[str]] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    cluster: str = "auto",
) -> list[RelianceRow]:
    """Every reliance number of (task, model) from stored runs of `task` and `task@NAME` (see the module doc)."""
    base = find_run(store, task, model)
    clustering = load_clustering(store, task, cluster)
    rows: list[RelianceRow] = []
    for transform in transforms:
        try:
            variant = find_run(store, variant_task(task, transform), model)
        except EvalkitError:
            missing = RelianceRow(task, base["model"], transform, "drop", "*", "original", transform)
            missing.unavailable = f"no run of {variant_task(task, transform)}; `evalkit reliance` runs it"
            rows.append(missing)
            continue
        rows.extend(metric_drops(store, base, variant, transform, n_boot=n_boot, seed=seed, cluster=cluster))

        def paired(
            score: str,
            metric: str,
            labels: tuple[str, str],
            values: Mapping[str, tuple[float, float]],
            t: str = transform,
        ) -> RelianceRow:
            return _paired_row(base, t, score, metric, labels, values, clustering, n_boot, seed)

        if transform == "shuffle":
            metric, values = shuffle_agreement(store, base, variant, kind)
            rows.append(paired("shuffle agreement", metric, ("other study's reference", "own reference"), values))
        if transform == "hflip" and kind == "grounding":
            values = flip_equivariance(store, base, variant)
            rows.append(paired("flip equivariance", "soft_f1_iou", ("mirrored answer", "unmirrored answer"), values))
        if transform == "blank" and kind == "grounding":
            rows.append(paired("boxes on blank", "box rate", ("blank", "original"), boxes_given(store, base, variant)))
        if transform == "blank" and kind == "report_generation":
            values, unlabelled, labeller = findings_asserted(store, base, variant, report_labels or {})
            row = paired("findings on blank", f"finding rate ({labeller})", ("blank", "original"), values)
            if unlabelled and labeller != "chexbert":
                row = RelianceRow(task, base["model"], transform, row.score, row.metric, "blank", "original")
                row.unavailable = (
                    f"{unlabelled} answer(s) are not a labelled report of the data set; labelling free text needs "
                    "the CheXbert weights"
                )
            rows.append(row)
    return rows


def primary_blank_drop(rows: Sequence[RelianceRow], primary: str) -> RelianceRow | None:
    """The headline number (leaderboard column): the primary metric's drop on the blank image."""
    return next((r for r in rows if r.transform == "blank" and r.score == "drop" and r.metric == primary), None)


RELIANCE_COLUMN = "image reliance"


def leaderboard_reliance_rows(
    store: Store, rows: Sequence[dict[str, Any]], *, n_boot: int = 1_000, seed: int = 0, cluster: str = "auto"
) -> list[dict[str, Any]]:
    """One extra leaderboard row per (task, model) whose `T@blank` run is stored: the primary metric's drop on
    the blank image, with its paired CI, as a column named `image reliance` (> 0: the score needs the image)."""
    out = []
    for row in rows:
        if not row.get("primary") or row.get("status") != "ok" or SEPARATOR in row["task"]:
            continue
        try:
            base = find_run(store, row["task"], row["run_id"])
            variant = find_run(store, variant_task(row["task"], "blank"), row["model"])
            (drop,) = metric_drops(
                store, base, variant, "blank", n_boot=n_boot, seed=seed, cluster=cluster, metrics=[row["metric"]]
            )
        except (EvalkitError, ValueError):
            continue
        out.append(
            {
                **row,
                "metric": RELIANCE_COLUMN,
                "value": drop.value,
                "n": drop.n,
                "ci_low": drop.ci_low,
                "ci_high": drop.ci_high,
                "higher_is_better": True,
                "primary": False,
                "reason": None,
                "reliance_of": f"{row['metric']} drop on {variant['task']} (run {variant['run_id']})",
            }
        )
    return out


PANEL_SCORES = ("shuffle agreement", "flip equivariance", "boxes on blank", "findings on blank")


def panel_rows(
    store: Store,
    task: str,
    kind: str,
    primary: str | None,
    models: Sequence[str],
    tasks_with_runs: Sequence[str],
    *,
    n_boot: int,
    seed: int = 0,
    cluster: str = "auto",
) -> list[RelianceRow]:
    """The site's image-reliance panel for one task: per model with stored variants, the primary metric's drop
    on each transform and the extra scores (aggregates only, so a public build of a credentialed task may show
    them)."""
    out: list[RelianceRow] = []
    for model in models:
        present = [t for t in TRANSFORM_NAMES if variant_task(task, t) in tasks_with_runs]
        try:
            rows = reliance_rows(
                store, task, model, kind=kind, transforms=present, n_boot=n_boot, seed=seed, cluster=cluster
            )
        except EvalkitError:
            continue
        out += [
            r
            for r in rows
            if not r.unavailable and ((r.score == "drop" and r.metric == primary) or r.score in PANEL_SCORES)
        ]
    return out
