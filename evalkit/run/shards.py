"""`--shard i/N`: a deterministic partition of a task's samples by a hash of each sample id.

A sample's shard depends only on its id and N (never on its position or on the other samples), so a task that
grows keeps every old sample in its shard, and N jobs (a SLURM array) cover the task exactly once. Shards share
the run id of the unsharded run: each shard's database holds a partial run that resumes on its own, and
`evalkit merge` of the N databases holds the whole run, with aggregates recomputed from the per-sample scores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

from evalkit.errors import EvalkitError

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N (SLURM's `--array=0-(N-1)` gives i as $SLURM_ARRAY_TASK_ID)."""
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise EvalkitError(f"--shard must be i/N with whole numbers, e.g. 0/4, not '{text}'") from None
    if count < 1 or not 0 <= index < count:
        raise EvalkitError(f"--shard {text}: need N >= 1 and 0 <= i < N (shards are numbered from 0)")
    return index, count


def shard_of(sample_id: str, count: int) -> int:
    """The shard (0..count-1) a sample id falls in: the first 8 bytes of its SHA-256, modulo count."""
    digest = hashlib.sha256(str(sample_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def shard_samples(samples: Sequence[T], index: int, count: int) -> list[T]:
    """The samples of shard `index` of `count`, in the task's order."""
    return [s for s in samples if shard_of(s.sample_id, count) == index]  # type: ignore[attr-defined]
