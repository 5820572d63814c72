"""Transformed images, made in memory from their source file: nothing is written next to the data.

A transformed image travels through the runner as a virtual path, `evalkit-transform:<name>:<seed>:<source>`;
`evalkit.images` resolves such paths here, so the runner, its generation cache and every adapter see the
transformed pixels (the cache key hashes them) without a file on disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps

from evalkit.errors import SampleError
from evalkit.image_files import header_size, read_rgb

PREFIX = "evalkit-transform:"


def virtual_path(name: str, seed: int, source: str) -> str:
    return f"{PREFIX}{name}:{int(seed)}:{source}"


def is_virtual(path: str) -> bool:
    return str(path).startswith(PREFIX)


def split_virtual(path: str) -> tuple[str, int, str]:
    """(transform name, seed, source path) of a virtual path."""
    name, seed, source = str(path)[len(PREFIX) :].split(":", 2)
    return name, int(seed), source


def _source_rng(seed: int, source: Image.Image) -> np.random.Generator:
    # Seeded by the transform seed and the source's pixels, so each image gets its own, reproducible draw.
    digest = hashlib.sha256(source.tobytes()).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def blank(image: Image.Image, seed: int) -> Image.Image:
    """A uniform image of the original's mean grey, same size: nothing left to look at."""
    grey = round(float(np.asarray(image.convert("L"), dtype=np.float64).mean()))
    return Image.new("RGB", image.size, (grey, grey, grey))


def noise(image: Image.Image, seed: int) -> Image.Image:
    """The original's pixels in a seeded random order: same histogram (brightness, contrast), no anatomy."""
    pixels = np.asarray(image.convert("RGB"))
    flat = pixels.reshape(-1, pixels.shape[-1])
    shuffled = flat[_source_rng(seed, image).permutation(flat.shape[0])]
    return Image.fromarray(shuffled.reshape(pixels.shape), "RGB")


def hflip(image: Image.Image, seed: int) -> Image.Image:
    """Mirrored left-right; references are mirrored with it (evalkit.transforms.samples)."""
    return ImageOps.mirror(image.convert("RGB"))


PIXEL_TRANSFORMS: dict[str, Callable[[Image.Image, int], Image.Image]] = {
    "blank": blank,
    "noise": noise,
    "hflip": hflip,
}


def _stamp(source: str) -> tuple[int, int]:
    try:
        stat = os.stat(source)
    except OSError as exc:
        raise SampleError(f"cannot read image {source}: {exc.strerror or exc}") from exc
    return stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=64)
def _render(path: str, size: int, mtime_ns: int) -> Image.Image:
    name, seed, source = split_virtual(path)
    if name not in PIXEL_TRANSFORMS:
        raise SampleError(f"{path}: unknown image transform '{name}'; known: {', '.join(sorted(PIXEL_TRANSFORMS))}")
    return PIXEL_TRANSFORMS[name](read_rgb(source), seed)


def load_transformed(path: str) -> Image.Image:
    """The transformed RGB image of a virtual path (a copy: callers may change it)."""
    source = split_virtual(path)[2]
    return _render(path, *_stamp(source)).copy()


@lru_cache(maxsize=65536)
def _hash(path: str, size: int, mtime_ns: int) -> str:
    image = _render(path, size, mtime_ns)
    digest = hashlib.sha256(f"{image.mode}:{image.size}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:24]


def transformed_hash(path: str) -> str:
    """Hash of the transformed pixels (not of the path): generation cache keys see what the model sees."""
    return _hash(path, *_stamp(split_virtual(path)[2]))


def transformed_size(path: str) -> tuple[int, int]:
    return header_size(split_virtual(path)[2])  # every transform keeps the size
