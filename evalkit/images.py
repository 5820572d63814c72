"""Image reading shared by the runner and loaders: one place that turns a bad file into a per-sample error."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

from PIL import Image

from evalkit.errors import SampleError
from evalkit.image_files import header_size, read_rgb
from evalkit.transforms.pixels import is_virtual, load_transformed, split_virtual, transformed_hash, transformed_size


@lru_cache(maxsize=65536)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:24]


def image_hash(path: str) -> str:
    """Content hash (memoised on path, size and mtime) used in generation cache keys."""
    if is_virtual(path):
        return transformed_hash(path)
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise SampleError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    return _file_hash(path, stat.st_size, stat.st_mtime_ns)


def load_image(path: str) -> Image.Image:
    """Decoded RGB image; a missing or corrupt file raises SampleError naming the path."""
    if is_virtual(path):
        return load_transformed(path)
    return read_rgb(path)


def image_size(path: str) -> tuple[int, int]:
    """(width, height) from the file header alone, for adapters that never read pixels (nothing is decoded, so a
    file whose pixel data is damaged passes here; such an adapter would not have looked at it either)."""
    if is_virtual(path):
        return transformed_size(path)
    return header_size(path)


def image_exists(path: str) -> bool:
    """Whether the file (for a transformed image: its source file) is there."""
    return os.path.isfile(split_virtual(path)[2] if is_virtual(path) else path)
