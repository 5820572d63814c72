"""Small pieces shared by the real-data grounding loaders (imagenome, vindr_cxr, ms_cxr, padchest_gr)."""

from __future__ import annotations

import csv
import difflib
import gzip
import hashlib
import io
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from evalkit.errors import EvalkitError

MIMIC_FOLDER_GUESS = "mimic_cxr"  # sibling folder tried for MIMIC-CXR-JPG images when `images_root` is not set


def radvlm_case(text: str) -> str:
    """RadVLM lower-cases a prompt label that starts with a capital and is not all capitals ("ILD" stays)."""
    text = str(text).strip()
    return text.lower() if text and text[0].isupper() and not text.isupper() else text


def slug(text: str) -> str:
    """A sample-id fragment from a class or region name: 'Nodule/Mass' -> 'Nodule_Mass'."""
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_")


def text_key(text: str) -> str:
    """A short, order-independent id fragment for a phrase."""
    return hashlib.sha1(str(text).encode("utf-8")).hexdigest()[:10]


def option(options: dict[str, Any], name: str, default: Any, known: Iterable[str], loader: str) -> Any:
    unknown = set(options) - set(known)
    if unknown:
        close = {u: difflib.get_close_matches(u, list(known)) for u in sorted(unknown)}
        hints = [f"'{u}': did you mean '{c[0]}'?" for u, c in close.items() if c]
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise EvalkitError(
            f"{loader}: unknown dataset option(s) {sorted(unknown)}{hint}; known: {sorted(known)}; fix `dataset: "
            "options:` in the task YAML"
        )
    return options.get(name, default)


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV (plain, .gz, or the first .csv inside a .zip) as dicts; errors name the file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
                return list(csv.DictReader(handle))
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith(".csv")), None)
                if name is None:
                    raise EvalkitError(f"{path}: no .csv file inside the archive")
                with archive.open(name) as raw:
                    return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile, csv.Error) as exc:
        raise EvalkitError(f"{path}: cannot read CSV: {exc}") from exc


def require_columns(rows: list[dict[str, str]], path: Path, columns: Iterable[str]) -> None:
    present = set(rows[0]) if rows else set()
    missing = [c for c in columns if c not in present]
    if rows and missing:
        raise EvalkitError(f"{path}: missing column(s) {missing}; found {sorted(present)}")


def first_existing(root: Path, candidates: Iterable[str]) -> Path | None:
    for name in candidates:
        path = root / name
        if path.exists():
            return path
    return None


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image header only; None when unreadable."""
    try:
        with Image.open(path) as image:
            return int(image.size[0]), int(image.size[1])
    except (OSError, ValueError):
        return None


def mimic_image_path(subject_id: str, study_id: str, dicom_id: str) -> str:
    """MIMIC-CXR-JPG's relative path of an image."""
    subject = str(subject_id).strip()
    study = str(study_id).strip()
    study = study if study.startswith("s") else f"s{study}"
    return f"files/p{subject[:2]}/p{subject}/{study}/{dicom_id}.jpg"


def mimic_images_root(options: dict[str, Any], root: Path, loader: str) -> Path:
    """Folder holding MIMIC-CXR-JPG's `files/`: the `images_root` option (absolute or relative to the data set
    folder), else the data set folder itself, else a sibling `mimic_cxr` folder."""
    given = options.get("images_root")
    if given:
        path = Path(given) if Path(given).is_absolute() else root / given
        if not (path / "files").is_dir():
            raise EvalkitError(f"{loader}: dataset option images_root={given!r}: {path / 'files'} is not a folder")
        return path
    for path in (root, root.parent / MIMIC_FOLDER_GUESS):
        if (path / "files").is_dir():
            return path
    raise EvalkitError(
        f"{loader}: no MIMIC-CXR-JPG images found: neither {root / 'files'} nor "
        f"{root.parent / MIMIC_FOLDER_GUESS / 'files'} exists. Set `images_root` in the task's dataset options to "
        "your MIMIC-CXR-JPG folder (the one holding files/), or link that files/ folder into the data set folder."
    )


def mimic_sizes(images_root: Path) -> dict[str, tuple[int, int]]:
    """dicom_id -> (width, height) from MIMIC-CXR-JPG's metadata file when present (Columns, Rows), else {}."""
    path = first_existing(images_root, ["mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.0.0-metadata.csv"])
    if path is None:
        return {}
    sizes = {}
    for row in read_csv_rows(path):
        try:
            sizes[row["dicom_id"]] = (int(float(row["Columns"])), int(float(row["Rows"])))
        except (KeyError, TypeError, ValueError):
            continue
    return sizes


def no_images_error(loader: str, where: Path, fix: str) -> EvalkitError:
    return EvalkitError(f"{loader}: none of the split's images exist under {where}; {fix}")
