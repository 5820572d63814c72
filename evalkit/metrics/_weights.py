"""Where model-backed metrics find their weights: an explicit option, `$EVALKIT_METRIC_WEIGHTS`, the user's
Hugging Face cache, or the folder the reference package itself downloads to. Nothing here downloads anything.
"""

from __future__ import annotations

import os
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path

ENV = "EVALKIT_METRIC_WEIGHTS"
RRG_SCORERS = "StanfordAIMI/RRG_scorers"  # the Hub repository both radgraph and f1chexbert download from


def weights_root() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value).expanduser() if value else None


def hf_cached_file(repo_id: str, filename: str) -> Path | None:
    """A file of a Hub repository if it is already in the local Hugging Face cache (never a network call)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:
        return None
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def hf_cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of a Hub model if it is in the Hugging Face cache (never a network call)."""
    if "/" not in repo_id and not repo_id.replace("-", "").replace("_", "").replace(".", "").isalnum():
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None


def first_existing(candidates: Iterable[Path | None], *, is_dir: bool = False) -> Path | None:
    for candidate in candidates:
        if candidate is None:
            continue
        if candidate.is_dir() if is_dir else candidate.is_file():
            return candidate
    return None


def model_dir(name_or_path: str, *, required_file: str | tuple[str, ...] = "config.json") -> Path | None:
    """A local folder for a Hugging Face model: the path itself, `$EVALKIT_METRIC_WEIGHTS/<name>` or the HF cache.

    `required_file`: a file (or any of several files) the folder must hold to count.
    """
    wanted = (required_file,) if isinstance(required_file, str) else required_file
    path = Path(name_or_path).expanduser()
    root = weights_root()
    candidates = [path, root / name_or_path if root else None, root / name_or_path.split("/")[-1] if root else None]
    for candidate in candidates:
        if candidate is not None and any((candidate / f).is_file() for f in wanted):
            return candidate
    snapshot = hf_cached_snapshot(name_or_path)  # last: the only lookup that touches the HF cache index
    if snapshot is not None and any((snapshot / f).is_file() for f in wanted):
        return snapshot
    return None


def user_cache_dir(app: str) -> Path:
    """Where `appdirs.user_cache_dir(app)` points on Linux and macOS (the reference packages' download folders)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / app
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / app


def extract_archive(archive: Path, target: Path) -> Path:
    """Unpack a `.tar.gz` of model files into `target` (once); refuses members that would escape it."""
    if target.is_dir() and any(target.iterdir()):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(path=target, filter="data")
    return target
