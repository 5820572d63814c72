"""Compute-once annotation cache for model-backed metrics (RadGraph graphs, CheXbert labels, pair scores).

A model-backed metric annotates each *unique* text once per annotator version: first the process-wide memory
cache is asked, then the DuckDB `annotation_cache` (when the metric has `self.cache`, the Store the runner or
`score_reports` binds), and only the texts found in neither are run through the model, in batches, each batch
written back at once so that an interrupted scoring keeps what it computed. Reference reports are therefore
annotated once across all models, and a second scoring of the same predictions runs no model at all.

The annotator version must change whenever an annotation could change: it combines the metric's code version
with a fingerprint of the weights (see `weights_fingerprint`).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MEMORY_ENTRIES = 20_000
_memory: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_fingerprints: dict[tuple[str, int, int], str] = {}


def text_hash(text: str) -> str:
    """Content address of a text (sha256, 32 hex digits). Lone surrogates from bad input are kept, not fatal."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def pair_hash(*parts: str) -> str:
    """Content address of an ordered tuple of texts (e.g. reference + prediction)."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()[:32]


def weights_fingerprint(*paths: str | os.PathLike[str]) -> str:
    """Content fingerprint of weight files (a folder: every file in it), memoised per (path, size, mtime).

    A file in the Hugging Face cache is a link to `blobs/<sha256>`: that name is used as is. Other files are
    hashed; above 1 GiB only their size and first and last 16 MiB are (a 7B judge would take a minute).
    """
    digest = hashlib.sha256()
    for root in paths:
        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            digest.update(file.name.encode())
            digest.update(_file_fingerprint(file).encode())
    return digest.hexdigest()[:16]


def _file_fingerprint(file: Path) -> str:
    resolved = file.resolve()
    if file.is_symlink() and resolved.parent.name == "blobs" and len(resolved.name) >= 40:
        return resolved.name
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if key not in _fingerprints:
        h = hashlib.sha256()
        with open(resolved, "rb") as handle:
            if stat.st_size > 1 << 30:
                h.update(str(stat.st_size).encode())
                h.update(handle.read(1 << 24))
                handle.seek(-(1 << 24), os.SEEK_END)
                h.update(handle.read(1 << 24))
            else:
                for block in iter(lambda handle=handle: handle.read(1 << 22), b""):
                    h.update(block)
        _fingerprints[key] = h.hexdigest()
    return _fingerprints[key]


def encode_array(array: np.ndarray) -> str:
    """float32 vector -> base64 text (4 bytes a number instead of ~20 in JSON)."""
    return base64.b64encode(np.asarray(array, dtype="<f4").tobytes()).decode("ascii")


def decode_array(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


def _remember(key: tuple[str, str, str], value: Any) -> None:
    _memory[key] = value
    _memory.move_to_end(key)
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)


def clear_memory() -> None:
    """Forget the process-wide cache (tests and benchmarks use it to measure the DuckDB path)."""
    _memory.clear()


def annotate(
    keys: Sequence[str],
    inputs: dict[str, Any],
    compute: Callable[[list[Any]], list[Any]],
    *,
    annotator: str,
    version: str,
    store: Any = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Annotations of `keys` (content hashes), computing only those cached nowhere.

    Args:
        keys: Content hashes wanted (duplicates allowed).
        inputs: hash -> what `compute` needs for it (a text, or a (reference, prediction) pair).
        compute: Annotates a list of inputs, returning one JSON-serialisable value per input, in order.
        annotator: Cache namespace, e.g. `radgraph:radgraph-xl`.
        version: Annotator version: code version + weights fingerprint.
        store: An `evalkit.store.Store` (or None: memory only).
        batch_size: Inputs per `compute` call; each batch is written to the store when done.

    Returns:
        hash -> annotation for every wanted key.
    """
    wanted = list(dict.fromkeys(keys))
    found: dict[str, Any] = {}
    for h in wanted:
        key = (annotator, version, h)
        if key in _memory:
            found[h] = _memory[key]
    missing = [h for h in wanted if h not in found]
    if missing and store is not None:
        stored = store.get_annotations(annotator, version, missing)
        found.update(stored)
        for h, value in stored.items():
            _remember((annotator, version, h), value)
        missing = [h for h in missing if h not in found]
    for start in range(0, len(missing), max(1, batch_size)):
        chunk = missing[start : start + batch_size]
        values = compute([inputs[h] for h in chunk])
        if len(values) != len(chunk):
            raise RuntimeError(f"{annotator}: annotated {len(values)} inputs for {len(chunk)}")
        new = dict(zip(chunk, values, strict=True))
        if store is not None:
            store.put_annotations(annotator, version, new)
        for h, value in new.items():
            _remember((annotator, version, h), value)
        found.update(new)
    return found


def annotate_texts(
    texts: Iterable[str],
    compute: Callable[[list[str]], list[Any]],
    *,
    annotator: str,
    version: str,
    store: Any = None,
    batch_size: int = 64,
) -> list[Any]:
    """`annotate` for plain texts: one annotation per text, in order (each unique text annotated once)."""
    texts = list(texts)
    hashes = [text_hash(t) for t in texts]
    inputs = dict(zip(hashes, texts, strict=True))
    found = annotate(hashes, inputs, compute, annotator=annotator, version=version, store=store, batch_size=batch_size)
    return [found[h] for h in hashes]
