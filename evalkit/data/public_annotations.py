"""Real annotation files that ship on the package index, laid out in the folders evalkit's loaders read.

`torchxrayvision==1.5.7` (Apache-2.0; each data file keeps its data set's licence) carries under
`torchxrayvision/data/` the VinDr-CXR training boxes (VinBigData release), NIH ChestX-ray14's expert boxes and
image table, the Indiana University (Open-i) reports with a view table, and PadChest's 160K label table. Install
it with `pip install --no-deps torchxrayvision==1.5.7` and never import it: its `__init__` imports torchvision,
which breaks next to a CPU torch. `importlib.util.find_spec` finds the folder without running the package.

`write_public_annotations(out)` copies the files into `out/<loader folder>/`, so `--data-root out` makes the
public tasks load (`nih-cxr14-bbox-grounding`, `iu-xray-report`, `vindr-reader-agreement`) before any image
is downloaded. Nothing here is committed to the repository; VinDr-CXR and PadChest rows are credentialed data
and stay on the user's disk.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import EvalkitError

PACKAGE = "torchxrayvision"
PACKAGE_PIN = "torchxrayvision==1.5.7"
INSTALL_HINT = f"pip install --no-deps {PACKAGE_PIN}"


@dataclass(frozen=True)
class PublicFile:
    """One shipped file and where the loaders look for it (relative to the data root)."""

    name: str  # file name inside torchxrayvision/data/
    target: str  # path under the data root
    dataset: str
    licence: str


NIH_TERMS = "unrestricted use (NIH Clinical Center); cite Wang et al., CVPR 2017"
PADCHEST_TABLE = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"
FILES: tuple[PublicFile, ...] = (
    PublicFile("BBox_List_2017.csv.gz", "nih_cxr14/BBox_List_2017.csv.gz", "NIH ChestX-ray14", NIH_TERMS),
    PublicFile("Data_Entry_2017_v2020.csv.gz", "nih_cxr14/Data_Entry_2017_v2020.csv.gz", "NIH ChestX-ray14", NIH_TERMS),
    PublicFile("NLMCXR_reports.tgz", "iu_xray/NLMCXR_reports.tgz", "IU X-ray (Open-i)", "CC BY-NC-ND 4.0"),
    PublicFile(
        "nlmcxr_dicom_metadata.csv.gz", "iu_xray/nlmcxr_dicom_metadata.csv.gz", "IU X-ray (Open-i)", "CC BY-NC-ND 4.0"
    ),
    PublicFile("nlmcxr_tsne_pa.csv.gz", "iu_xray/nlmcxr_tsne_pa.csv.gz", "IU X-ray (Open-i)", "Apache-2.0 (txv)"),
    PublicFile(
        "vinbigdata-train.csv.gz",
        "vindr_cxr/annotations/annotations_train.csv.gz",
        "VinDr-CXR (VinBigData challenge release)",
        "PhysioNet credentialed / VinBigData challenge terms",
    ),
    PublicFile(PADCHEST_TABLE, f"padchest_gr/{PADCHEST_TABLE}", "PadChest", "PadChest research use agreement (BIMCV)"),
)


def package_data_dir() -> Path:
    """torchxrayvision's data folder, found without importing the package (its import pulls torchvision)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "data"
        if folder.is_dir():
            return folder
    raise EvalkitError(f"the real annotation files come with {PACKAGE_PIN}, which is not installed: {INSTALL_HINT}")


def public_file(name: str) -> Path:
    """Path of one shipped file, with an error naming the install command when it is absent."""
    path = package_data_dir() / name
    if not path.is_file():
        raise EvalkitError(f"{path} not found: is it {PACKAGE_PIN}? reinstall with {INSTALL_HINT}")
    return path


def write_public_annotations(out: Path, link: bool = False) -> list[Path]:
    """Copy (or symlink, with `link`) every shipped file into `out` in the loaders' layouts; returns the targets.

    An existing target is replaced, so running it twice (or after a package upgrade) is safe.
    """
    out = Path(out)
    written = []
    for item in FILES:
        source, target = public_file(item.name), out / item.target
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        if link:
            target.symlink_to(source.resolve())
        else:
            shutil.copyfile(source, target)
        written.append(target)
    return written
