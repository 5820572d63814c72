"""The resumable run: samples -> prompts -> adapter -> parse -> metrics -> DuckDB.

Resume rules: a run is identified by (task, task version, dataset options, model fingerprint), so running the
same thing again continues the same run. Each batch of generations is committed in one transaction together
with the deletion of any stale scores, and generations are also cached by content, so a run killed at any point
(SIGKILL included) loses at most the batch in flight and generates nothing twice. Samples whose generation
failed are retried on the next run.

Scores are keyed by their identity (metric, version, canonical options, weights fingerprint): a change to any
part scores the stored generations again under the new identity; the old scores stay, so going back to the
old options is a cache hit. Run size: `limit` bounds how many samples this call generates; aggregates always
cover every sample the run holds, so a limited call after a full run leaves its values (and CIs) as they were,
and a run holding fewer samples than the task is `partial` wherever it is shown.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalkit._version import __version__
from evalkit.answers import parse_for_card
from evalkit.config import ModelCard, TaskSpec
from evalkit.data import get_loader
from evalkit.data.issues import collect_issues, issues_summary
from evalkit.errors import EvalkitError, RunInterrupted, SampleError
from evalkit.images import image_exists, image_hash, image_size, load_image
from evalkit.metrics import get_metric
from evalkit.metrics.base import Metric, ScoreIdentity, safe_score
from evalkit.model_adapters.base import Adapter, GenerationRequest, GenerationResult, stable_hash
from evalkit.profiles import get_profile, parsing_identity
from evalkit.results.aggregates import aggregate_current
from evalkit.results.queries import (
    current_score_counts,
    failed_generation_count,
    failed_samples,
    generation_count,
    generation_failure_counts,
    held_sample_count,
    run_model_name,
    score_counts,
    stored_metric_rows,
    unscored_generations,
)
from evalkit.results.store import HOLD_S, SLOW_STEP_S, Store, dumps, loads
from evalkit.results.writes import drop_other_metrics, drop_scores, set_metric_aggregate
from evalkit.run.progress import RunProgress
from evalkit.run.prompts import render_prompt
from evalkit.sample import Parsed, Sample

DEFAULT_DATA_ROOT = Path("data")
SCORE_CHUNK = 4096
CACHE_COLUMNS = ("cache_key", "text", "tokens", "latency", "created_at")
GENERATION_COLUMNS = (
    "run_id",
    "sample_id",
    "prompt_hash",
    "prompt",
    "text",
    "parsed",
    "tokens",
    "latency",
    "error",
    "cache_key",
    "error_file",
)
SCORE_COLUMNS = ("run_id", "sample_id", "metric", "metric_version", "score_key", "value", "stats")


# Under `errored_samples: zero` a failed grounding sample answers one zero-area box that overlaps nothing: a miss
# of every reference box *and* a false positive. An empty answer would have no false positive, so a failure could
# raise COCO AP (precision) and RadVLM's avg_iou (a mean over matched pairs only); this way it never scores above
# excluding the sample or any one-box answer. Per-sample metrics (miou, acc50, radvlm_map50, soft_f1) give 0 either way.
FAILED_BOXES: tuple[tuple[float, float, float, float], ...] = ((0.0, 0.0, 0.0, 0.0),)


def data_root_default() -> Path:
    return Path(os.environ.get("EVALKIT_DATA_ROOT", DEFAULT_DATA_ROOT))


def dataset_root(task: TaskSpec, data_root: Path) -> Path:
    return Path(data_root) / (task.dataset.root or task.dataset.loader)


def load_samples(task: TaskSpec, data_root: Path, split: str | None = None) -> list[Sample]:
    """Samples of a task's split; the phantom set is made on first use (it is code, not data)."""
    loader = get_loader(task.dataset.loader)  # an unknown loader is reported as such, not as a missing folder
    root = dataset_root(task, data_root)
    if Path(data_root).exists() and not Path(data_root).is_dir():
        raise EvalkitError(
            f"data root {data_root} is a file, not a folder; point --data-root (or EVALKIT_DATA_ROOT) at the "
            "folder that holds the data sets"
        )
    if task.dataset.loader == "phantom" and not (root / "phantom.json").exists():
        import sys

        from evalkit.data.phantom import ensure_phantom

        print(f"making the synthetic phantom set at {root} (once, a few seconds)", file=sys.stderr, flush=True)
        ensure_phantom(root)
    if not root.exists():
        raise EvalkitError(
            f"task '{task.name}': data folder {root} does not exist; pass --data-root (or set EVALKIT_DATA_ROOT) "
            f"to the folder holding '{task.dataset.root or task.dataset.loader}'"
        )
    with collect_issues(task.name, split or task.dataset.split):  # malformed rows -> the run summary
        samples = loader(task.dataset, root, task.name, split or task.dataset.split)
    if task.transform is not None and split is None:  # a derived task's own samples; a train split stays as is
        from evalkit.transforms.samples import apply_transform

        samples = apply_transform(task.transform, samples)
    seen: set[str] = set()
    for sample in samples:
        if sample.sample_id in seen:
            raise EvalkitError(f"task '{task.name}': duplicate sample_id '{sample.sample_id}' from the loader")
        seen.add(sample.sample_id)
    return samples


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_id_for(task: TaskSpec, fingerprint: str, card: ModelCard | None = None) -> str:
    parts = [task.name, task.version, task.dataset.model_dump(exclude={"root"}), fingerprint]
    if task.transform is not None:  # derived tasks only: the ids of every other run stay as they were
        parts.append(task.transform.model_dump())
    conventions = parsing_identity(task, card)  # empty under the task's own profile: ids as before
    return stable_hash(*parts, conventions) if conventions else stable_hash(*parts)


def valid_text(text: str | None) -> str | None:
    """Model text as valid UTF-8 (a lone surrogate, e.g. from a server's JSON "\\ud800", becomes "?"): any text
    must be storable, or one answer would stop the run."""
    return text.encode("utf-8", "replace").decode("utf-8") if text else text


def decoding_for(task: TaskSpec, card: ModelCard) -> dict[str, Any]:
    """Card decoding with the task's overrides on top."""
    decoding = card.decoding.model_dump()
    decoding.update(task.decoding.model_dump(exclude_none=True))
    return decoding


@dataclass
class RunSummary:
    run_id: str
    task: str
    model: str
    n_samples: int
    task_size: int = 0
    requested: int = 0
    generated: int = 0
    from_cache: int = 0
    reused: int = 0  # samples an earlier run of this pair had already stored: neither generated nor looked up
    errors: int = 0
    parse_failures: int = 0
    metrics: dict[str, float | None] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)  # sample_id, stage, reason, file
    seconds: float = 0.0

    @property
    def partial(self) -> bool:
        return self.n_samples < self.task_size


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def sample_row(sample: Sample) -> list[Any]:
    return [
        sample.task,
        sample.sample_id,
        dumps(sample.image_paths),
        dumps(sample.prompt_vars),
        sample.reference_text,
        dumps(sample.reference_boxes),
        dumps(sample.reference_labels),
        dumps(sample.meta),
        sample.cluster,
        dumps(sample.units),
    ]


class Runner:
    """Runs one (task, model) pair into a store. Construct per pair; `run()` does the whole job."""

    def __init__(
        self,
        store: Store,
        task: TaskSpec,
        card: ModelCard,
        adapter: Adapter,
        *,
        data_root: Path | None = None,
        samples: list[Sample] | None = None,
        limit: int | None = None,
        batch_size: int = 16,
        progress: bool | str = True,
        task_size: int | None = None,
    ) -> None:
        if limit is not None and limit < 1:
            raise EvalkitError(f"--limit must be 1 or more (the number of samples to run), not {limit}")
        self.store, self.task, self.card, self.adapter = store, task, card, adapter
        self.data_root = Path(data_root) if data_root is not None else data_root_default()
        # Every sample the run may hold (scoring and aggregates) vs those this call generates (`limit`).
        self.all_samples = samples if samples is not None else load_samples(task, self.data_root)
        self.samples = self.all_samples[:limit] if limit is not None else self.all_samples
        self.task_size = task_size if task_size is not None else len(self.all_samples)
        self.batch_size = max(1, batch_size)
        # True: a bar on a terminal, plain lines elsewhere; False: silent; or an explicit "rich" | "plain" | "off".
        self.progress = progress if isinstance(progress, str) else RunProgress.auto_mode(progress)
        self._reporter = RunProgress("", 0)
        self.decoding = decoding_for(task, card)
        self._slow_generate = True  # until a batch shows otherwise, generate with the file closed

    # --- generation -------------------------------------------------------------------------------------------
    def _parse(self, text: str, sample: Sample, size: tuple[int, int] | None) -> Parsed:
        profile = get_profile(self.task.profile)
        return parse_for_card(
            text,
            self.task.parser,
            self.card,
            sample.image_size or size,
            **profile.parsing_for(self.card),
        )

    def _generate_batch(self, batch: Sequence[Sample], fingerprint: str, run_id: str) -> dict[str, int]:
        counts = {"generated": 0, "from_cache": 0, "errors": 0}
        rows: dict[str, dict[str, Any]] = {}
        pending: list[tuple[Sample, GenerationRequest, str, tuple[int, int]]] = []
        for sample in batch:
            system, prompt = render_prompt(self.task, self.card, sample)
            prompt_hash = stable_hash(system, prompt)
            row = {"prompt_hash": prompt_hash, "prompt": prompt, "size": None}
            rows[sample.sample_id] = row
            reads_images = getattr(self.adapter, "needs_images", True)
            paths = sample.image_paths if reads_images else []
            row["error_file"] = paths[0] if paths else None
            # An adapter that reads no image answers from the sample itself (stored predictions, a reader's
            # boxes): its cache key is the sample, or every sample with the same prompt would share one answer.
            hashes: list[str] = [] if reads_images else ["sample", sample.task, sample.sample_id]
            # `reads_pixels = False`: the adapter needs only the size (a prior box), so only the header is read.
            decode = getattr(self.adapter, "reads_pixels", True)
            images = []
            size = None
            try:
                for path in paths:
                    row["error_file"] = path  # the file named in the run summary if this sample fails
                    hashes.append(image_hash(path))
                    if decode:
                        images.append(load_image(path))
                    elif size is None:
                        size = image_size(path)
            except SampleError as exc:
                row.update(text="", error=str(exc), cache_key=None)
                continue
            row["error_file"] = paths[0] if paths else None
            size = images[0].size if images else size
            row["size"] = size
            key = stable_hash(fingerprint, system, prompt, hashes, self.decoding, length=32)
            row["cache_key"] = key
            request = GenerationRequest(sample, prompt, images, system, dict(self.decoding))
            pending.append((sample, request, key, size))

        cached = self.store.cached_generations([key for _, _, key, _ in pending])
        if self._slow_generate:
            self.store.release()  # the file stays closed while the model generates
        to_generate = [p for p in pending if p[2] not in cached]
        for sample, _, key, _ in pending:
            if key in cached:
                hit = cached[key]
                rows[sample.sample_id].update(
                    text=hit["text"], tokens=hit["tokens"], latency=hit["latency"], error=None
                )
                counts["from_cache"] += 1
        started = time.perf_counter()
        results = self._call_adapter([p[1] for p in to_generate])
        if to_generate:
            self._slow_generate = time.perf_counter() - started > SLOW_STEP_S
        new_cache = []
        for (sample, _, key, _), result in zip(to_generate, results, strict=True):
            text = valid_text(result.text)
            rows[sample.sample_id].update(text=text, tokens=result.tokens, latency=result.latency_s, error=result.error)
            if result.error is None:
                counts["generated"] += 1
                new_cache.append([key, text, result.tokens, result.latency_s])

        generation_rows, ids = [], []
        for sample in batch:
            row = rows[sample.sample_id]
            if row.get("error"):
                counts["errors"] += 1
                parsed = Parsed(
                    answer="",
                    boxes=[list(b) for b in FAILED_BOXES] if self.task.parser == "boxes" else [],
                    parse_error=f"generation failed: {row['error']}",
                )
            else:
                parsed = self._parse(row["text"], sample, row["size"])
            ids.append(sample.sample_id)
            generation_rows.append(
                [
                    run_id,
                    sample.sample_id,
                    row["prompt_hash"],
                    row["prompt"],
                    row.get("text", ""),
                    dumps(parsed.to_json()),
                    row.get("tokens"),
                    row.get("latency"),
                    row.get("error"),
                    row.get("cache_key"),
                    row.get("error_file") if row.get("error") else None,
                ]
            )
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.store.transaction() as con:
            self.store.insert_rows("generation_cache", CACHE_COLUMNS, [[*row, now] for row in new_cache])
            self.store.insert_rows("generations", GENERATION_COLUMNS, generation_rows)
            drop_scores(con, run_id, ids)
        return counts

    def _call_adapter(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Batched call; if the whole batch raises, retry one by one so only the bad sample fails."""
        if not requests:
            return []
        try:
            results = self.adapter.generate(requests)
            if len(results) != len(requests):
                raise RuntimeError(f"adapter returned {len(results)} results for {len(requests)} requests")
            return results
        except Exception:
            if len(requests) == 1:
                import traceback

                message = traceback.format_exc(limit=1).strip().splitlines()[-1]
                return [GenerationResult(text="", error=f"adapter error: {message}")]
            return [r for request in requests for r in self._call_adapter([request])]

    # --- scoring ----------------------------------------------------------------------------------------------
    def _metrics(self) -> tuple[list[tuple[Metric, ScoreIdentity]], dict[str, Metric], dict[str, str]]:
        """(available metric, its identity) pairs; every metric by name; why the unavailable ones cannot run."""
        available, instances, unavailable = [], {}, {}
        for spec in self.task.metrics:
            try:
                metric = get_metric(spec.name, **spec.options)
            except EvalkitError as exc:
                raise EvalkitError(f"task '{self.task.name}': {exc}") from None
            instances[spec.name] = metric
            reason = metric.available()
            if reason:
                unavailable[spec.name] = reason
            else:
                metric.cache = self.store
                available.append((metric, metric.identity()))
        return available, instances, unavailable

    def _score(self, run_id: str, metrics: list[tuple[Metric, ScoreIdentity]]) -> int:
        """Score every stored generation that has no score under the metric's current identity; how many."""
        by_id = {s.sample_id: s for s in self.all_samples}
        skip_errored = self.task.errored_samples == "exclude"
        written = 0
        complete = self._completely_scored(run_id, skip_errored)
        for metric, identity in metrics:
            if (metric.name, identity.key) in complete:
                continue  # every generation already has this score: no per-metric scan
            rows = unscored_generations(self.store, run_id, skip_errored, metric.name, identity.key)
            rows = [(sid, Parsed.from_json(loads(p, {}))) for sid, p in rows if sid in by_id]
            written += len(rows)
            slow = True
            for chunk in _chunks(rows, SCORE_CHUNK):
                samples = [by_id[sid] for sid, _ in chunk]
                if slow:
                    self.store.release()  # closed while a slow metric scores (it reopens for its caches)
                started = time.perf_counter()
                scores = safe_score(metric, [p for _, p in chunk], samples)
                slow = time.perf_counter() - started > SLOW_STEP_S
                self._reporter.scored_chunk(len(chunk))
                with self.store.transaction():
                    self.store.insert_rows(
                        "scores",
                        SCORE_COLUMNS,
                        [
                            [run_id, sid, metric.name, identity.version, identity.key, score.value, dumps(score.stats)]
                            for (sid, _), score in zip(chunk, scores, strict=True)
                        ],
                    )
                self.store.release(held_s=HOLD_S)
        return written

    def _completely_scored(self, run_id: str, skip_errored: bool) -> set[tuple[str, str]]:
        """(metric, score key) pairs under which every generation to score holds a score, in two queries (a
        fully cached rerun of a task with ten metrics would otherwise scan the run once per metric)."""
        wanted = generation_count(self.store, run_id, skip_errored)
        return {(metric, key) for metric, key, n in score_counts(self.store, run_id, skip_errored) if n == wanted}

    def _aggregate(
        self,
        run_id: str,
        metrics: list[tuple[Metric, ScoreIdentity]],
        instances: dict[str, Metric],
        unavailable: dict[str, str],
    ) -> dict[str, Any]:
        """run_metrics rows: what each metric is (identity, direction, primary, position) and its value over the
        run's current scores (the same rows every reader's CIs use)."""
        values: dict[str, float | None] = {}
        identities = {m.name: identity for m, identity in metrics}
        with self.store.transaction() as con:
            drop_other_metrics(con, run_id, self.task.metric_names)
            failed_generations = failed_generation_count(con, run_id)
            for row in self._metric_rows(run_id, metrics, instances, unavailable):
                self.store.insert_dicts("run_metrics", [{**row, "value": None, "n": 0, "n_errored": 0}])
                name = row["metric"]
                metric, identity = instances[name], identities.get(name)
                if identity is None:
                    continue
                value, n_scored, metric_failures = aggregate_current(con, run_id, metric)
                values[name] = value
                set_metric_aggregate(con, run_id, name, value, n_scored, failed_generations + metric_failures)
        return values

    def _unchanged_aggregates(
        self,
        run_id: str,
        metrics: list[tuple[Metric, ScoreIdentity]],
        instances: dict[str, Metric],
        unavailable: dict[str, str],
    ) -> dict[str, float | None] | None:
        """The stored aggregates when nothing they depend on changed (no generation, no new score, the same
        metrics, identities, positions and error policy, the same number of current scores); else None.

        A fully cached rerun then skips re-aggregating and re-bootstrapping every metric. A process that died
        between scoring and aggregating leaves a different n (or score key) behind, so it is recomputed.
        """
        stored = {r["metric"]: r for r in stored_metric_rows(self.store, run_id)}
        if set(stored) != set(self.task.metric_names):
            return None
        counts = current_score_counts(self.store, run_id)
        values: dict[str, float | None] = {}
        for expected in self._metric_rows(run_id, metrics, instances, unavailable):
            row = stored[expected["metric"]]
            scored = expected["status"] == "ok"
            if any(row[key] != value for key, value in expected.items()):
                return None
            if row["n"] != (counts.get(expected["metric"], 0) if scored else 0):
                return None
            if scored:
                values[expected["metric"]] = row["value"]
        return values

    def _metric_rows(
        self,
        run_id: str,
        metrics: list[tuple[Metric, ScoreIdentity]],
        instances: dict[str, Metric],
        unavailable: dict[str, str],
    ) -> list[dict[str, Any]]:
        """What each task metric's run_metrics row says it is (identity, direction, primary, position, error
        policy), in task order; the aggregate fills value, n and n_errored."""
        identities = {m.name: identity for m, identity in metrics}
        rows = []
        for position, spec in enumerate(self.task.metrics):
            metric, identity = instances[spec.name], identities.get(spec.name)
            rows.append(
                {
                    "run_id": run_id,
                    "metric": spec.name,
                    "metric_version": str(metric.version),
                    "status": "ok" if identity else "unavailable",
                    "reason": unavailable.get(spec.name),
                    "score_key": identity.key if identity else None,
                    "options": dumps(identity.options if identity else metric.canonical_options()),
                    "fingerprint": identity.fingerprint if identity else None,
                    "higher_is_better": bool(metric.higher_is_better),
                    "is_primary": spec.name == self.task.primary_metric,
                    "position": position,
                    "errored": self.task.errored_samples,
                }
            )
        return rows

    def _store_cis(self, run_id: str, only_missing: bool = False) -> None:
        """The CIs that leaderboard and site show, computed once now instead of on every read (`only_missing`:
        keep the stored ones that still match the aggregates)."""
        from evalkit.results.intervals import store_run_cis

        try:
            store_run_cis(self.store, {"run_id": run_id, "task": self.task.name}, only_missing=only_missing)
        except EvalkitError:
            pass  # a metric that cannot re-aggregate here: readers compute (and report) it on demand

    # --- the whole job ----------------------------------------------------------------------------------------
    def run(self, on_progress: Callable[[int], None] | None = None) -> RunSummary:
        start = time.perf_counter()
        if getattr(self.adapter, "needs_images", True):
            require_images(self.task, self.samples)
        fingerprint = self.adapter.fingerprint()
        run_id = self._named_run_id(run_id_for(self.task, fingerprint, self.card))
        summary = RunSummary(run_id, self.task.name, self.card.name, 0, self.task_size, len(self.samples))
        metrics, instances, summary.unavailable = self._metrics()  # bad metric options fail before any work
        done = self.store.done_sample_ids(run_id)
        todo = [s for s in self.samples if s.sample_id not in done]
        load = getattr(self.adapter, "load", None)
        if todo and callable(load):
            # Adapters that load lazily: a broken checkpoint fails here, before the run is recorded, never per
            # sample; readers get in meanwhile.
            self.store.release()
            load()
        self.store.put_samples(sample_row(s) for s in self.samples)
        self.store.upsert_run(
            {
                "run_id": run_id,
                "task": self.task.name,
                "task_version": self.task.version,
                "model": self.card.name,
                "model_fingerprint": fingerprint,
                "adapter": self.card.adapter,
                "card": dumps(self.card.model_dump(mode="json")),
                "decoding": dumps(self.decoding),
                "access": self.task.access,
                "evalkit_version": __version__,
                "git_sha": git_sha(),
                "started_at": datetime.now(UTC).replace(tzinfo=None),
                "finished_at": None,
                "status": "running",
                "n_samples": 0,
                "summary": None,
                "task_spec": dumps(self.task.model_dump(mode="json")),
                "task_size": self.task_size,
                "profile": self.task.profile if self.task.profile != self.task.own_profile else None,
            }
        )
        if todo:
            self.store.release()  # readers (leaderboard, site) get in while this process generates
        summary.reused = len(self.samples) - len(todo)
        label = f"{self.task.name} · {self.card.name}"
        try:
            with RunProgress(label, len(self.samples), self.progress) as reporter:
                self._reporter = reporter
                reporter.resumed(summary.reused)
                for batch in _chunks(todo, self.batch_size):
                    counts = self._generate_batch(batch, fingerprint, run_id)
                    self.store.release(held_s=HOLD_S)
                    summary.generated += counts["generated"]
                    summary.from_cache += counts["from_cache"]
                    reporter.generated_batch(
                        counts["generated"],
                        counts["from_cache"],
                        len(batch) - counts["generated"] - counts["from_cache"],
                    )
                    if on_progress:
                        on_progress(len(batch))
                release = getattr(self.adapter, "release_gpu", None)
                if todo and callable(release):
                    release()  # a vLLM engine hands the GPU to model-backed metrics (woken by the next generate)
                rescored = self._score(run_id, metrics)
                unchanged = None
                if not todo and not rescored:
                    unchanged = self._unchanged_aggregates(run_id, metrics, instances, summary.unavailable)
                if unchanged is None:
                    summary.metrics = self._aggregate(run_id, metrics, instances, summary.unavailable)
                    self._store_cis(run_id)
                else:
                    summary.metrics = unchanged
                    self._store_cis(run_id, only_missing=True)
        except KeyboardInterrupt as exc:
            kept = len(self.store.done_sample_ids(run_id))
            self.store.finish_run(
                run_id, "interrupted", self._held(run_id), {"note": "interrupted; run again to resume"}
            )
            self.store.release()
            raise RunInterrupted(self.task.name, self.card.name, kept, len(self.samples)) from exc
        summary.errors, summary.parse_failures = generation_failure_counts(self.store, run_id)
        summary.n_samples = self._held(run_id)
        summary.failed = failed_samples(self.store, run_id)
        summary.seconds = time.perf_counter() - start
        self.store.finish_run(
            run_id,
            "finished",
            summary.n_samples,
            {
                "errors": summary.errors,
                "failed_samples": len({f["sample_id"] for f in summary.failed}),
                "parse_failures": summary.parse_failures,
                "generated": summary.generated,
                "from_cache": summary.from_cache,
                "unavailable": summary.unavailable,
                "data_issues": issues_summary(self.task.name, self.task.dataset.split),
                "seconds": round(summary.seconds, 3),
            },
        )
        self.store.release()
        return summary

    def _named_run_id(self, run_id: str) -> str:
        """The model name is part of a run's identity: the same predictions scored as `alpha` and as `beta` (or a
        card copied under a new name) are two runs, never one run that keeps the first name. The first name keeps
        the plain id, so ids of existing runs (and of runs whose name is not shared) never change."""
        held = run_model_name(self.store, run_id)
        return run_id if held is None or held == self.card.name else stable_hash(run_id, {"model": self.card.name})

    def _held(self, run_id: str) -> int:
        """Samples the run holds (generated, failed or not) among the task's current samples."""
        ids = [s.sample_id for s in self.all_samples]
        return held_sample_count(self.store, run_id, ids)


def require_images(task: TaskSpec, samples: Sequence[Sample]) -> None:
    """Stop before a run starts when not one sample's image exists (public annotations without the images).

    Loaders of public data sets keep such samples, so that `evalkit score` can score predictions made elsewhere;
    a model that looks at images needs them. One missing file among many stays a per-sample error.
    """
    if not samples or any(s.image_paths and image_exists(s.image_paths[0]) for s in samples):
        return
    first = next((s.image_paths[0] for s in samples if s.image_paths), None)
    where = f"expected e.g. {first}" if first else "the loader found no image folder"
    raise EvalkitError(
        f"task '{task.name}': none of the {len(samples)} samples' images exist ({where}). Put the data set's images "
        "there (docs/public-data.md says where each download goes), or score predictions made elsewhere with "
        f"`evalkit score --task {task.name} --predictions FILE.jsonl --model-name NAME`, which needs no image"
    )
