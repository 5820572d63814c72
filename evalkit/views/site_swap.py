"""Build a site beside its folder and swap it in when complete, so an interrupted build never costs the old site.

`site build --out DIR` renders into `.DIR.building-PID` next to DIR; only a finished build replaces DIR (two
renames, the old folder parked as `.DIR.old-PID` in between and deleted after). A build killed at any point
leaves DIR as it was, or, killed between the two renames, the old site parked whole: the next build puts it back
first, clears what dead builds left, and then works as usual.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evalkit.errors import EvalkitError


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _leftovers(out: Path, kind: str) -> list[tuple[Path, int | None]]:
    found = []
    for path in sorted(out.parent.glob(f".{out.name}.{kind}-*")):
        tail = path.name.rsplit("-", 1)[-1]
        found.append((path, int(tail) if tail.isdigit() else None))
    return found


def _recover(out: Path, marker: str) -> None:
    """A build killed between its two renames parked the old site: put it back before anything else."""
    if out.exists() or out.is_symlink():
        return
    for parked, _ in _leftovers(out, "old"):
        if (parked / marker).is_file():
            parked.rename(out)
            return


def _clear_dead(out: Path) -> None:
    for kind in ("building", "old"):
        for path, pid in _leftovers(out, kind):
            if pid is None or pid == os.getpid() or not _pid_alive(pid):
                shutil.rmtree(path, ignore_errors=True)


def check_target(out: Path, marker: str) -> None:
    """DIR is absent, empty, or an earlier build's output: the build replaces the whole folder."""
    if not out.exists():
        return
    if not out.is_dir():
        raise EvalkitError(f"{out}: exists and is not a folder")
    if any(out.iterdir()) and not (out / marker).exists():
        raise EvalkitError(
            f"{out}: folder is not empty and was not made by `evalkit site build`; "
            "choose another --out (the build replaces the whole folder)"
        )


@contextmanager
def staged_folder(out: Path, marker: str) -> Iterator[Path]:
    """A fresh folder to build into; on success it becomes `out` (the old one is removed), on any failure or
    interruption it is removed and `out` is untouched."""
    out = Path(out)
    _recover(out, marker)
    check_target(out, marker)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _clear_dead(out)
        staging = out.with_name(f".{out.name}.building-{os.getpid()}")
        staging.mkdir()
    except OSError as exc:
        raise EvalkitError(f"{out}: cannot write the site there ({exc.strerror or exc})") from None
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    parked = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(parked)
    staging.rename(out)
    shutil.rmtree(parked, ignore_errors=True)
