"""Reading an image file from disk (pixels or header only), with the SampleError that names the path.

Below evalkit/images.py (which also resolves transformed, virtual paths) and evalkit/transforms/pixels.py (which
reads the source file of a transformed image), so those two do not import each other."""

from __future__ import annotations

from PIL import Image

from evalkit.errors import SampleError


def read_rgb(path: str) -> Image.Image:
    """Decoded RGB pixels of a file; a missing or corrupt file raises SampleError naming the path."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SampleError(f"cannot read image {path}: {exc}") from exc


def header_size(path: str) -> tuple[int, int]:
    """(width, height) of a file from its header alone (nothing is decoded)."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SampleError(f"cannot read image {path}: {exc}") from exc
