"""`evalkit demo` and `evalkit data phantom | public-annotations`. The demo's work is evalkit/cli/_demo.py,
imported when the command runs (it pulls in the runner: every other command starts without it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli._common import DataRootOption, DbOption, console, err, fail, interrupted
from evalkit.cli.leaderboard import print_leaderboard
from evalkit.errors import EvalkitError
from evalkit.results.store import DEFAULT_DB


def demo(
    db: DbOption = DEFAULT_DB,
    data_root: DataRootOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N samples of each task.")] = None,
    tiny_model: Annotated[
        bool, typer.Option(help="Also build and run a tiny random Qwen3-VL (transformers path).")
    ] = True,
) -> None:
    """Make the phantom set if absent, run every baseline (and local model) on every phantom task, print the
    leaderboard. Runs offline on a CPU in a few minutes."""
    from evalkit.cli._demo import run_demo

    try:
        rows = run_demo(db, data_root, limit=limit, tiny_model=tiny_model, console=console)
    except EvalkitError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        _demo_interrupted(exc, db)
    print_leaderboard(rows)


def _demo_interrupted(exc: KeyboardInterrupt, db: Path) -> None:
    """Ctrl-C between two of the demo's runs: say what the file holds (every finished run is reused)."""
    from evalkit.errors import RunInterrupted
    from evalkit.results.queries import run_counts
    from evalkit.results.store import Store

    if isinstance(exc, RunInterrupted) or not Path(db).exists():
        interrupted(exc)
    try:
        with Store(db, read_only=True) as store:
            runs, samples = run_counts(store)
    except EvalkitError:
        interrupted(exc)
    err.print(
        f"interrupted: {db} holds {runs} run(s), {samples} samples; run `evalkit demo` again to resume (stored "
        "samples are reused, not generated again).",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    raise typer.Exit(130)


def data_phantom(
    out: Annotated[Path, typer.Option(help="Folder for the phantom set.")] = Path("data/phantom"),
    mimic_layout: Annotated[Path | None, typer.Option(help="Also write it in the MIMIC-CXR-JPG layout here.")] = None,
    ms_cxr_layout: Annotated[Path | None, typer.Option(help="Also write it in the MS-CXR layout here.")] = None,
) -> None:
    """Generate the synthetic phantom chest X-ray set (and, optionally, real-layout copies for loader tests)."""
    from evalkit.data.phantom import ensure_phantom, write_mimic_cxr_layout, write_ms_cxr_layout

    try:
        for flag, folder in (("--out", out), ("--mimic-layout", mimic_layout), ("--ms-cxr-layout", ms_cxr_layout)):
            if folder is not None and folder.exists() and not folder.is_dir():
                raise EvalkitError(f"{flag} {folder} is a file; give a folder (it is created if absent)")
        try:
            err.print(f"making the phantom set at {out} ...", highlight=False)
            root = ensure_phantom(out)
            console.print(f"phantom set at {root}")
            if mimic_layout:
                console.print(f"MIMIC-CXR-JPG layout at {write_mimic_cxr_layout(root, mimic_layout)}")
            if ms_cxr_layout:
                console.print(f"MS-CXR layout at {write_ms_cxr_layout(root, ms_cxr_layout)}")
        except OSError as exc:
            raise EvalkitError(f"{exc.filename or out}: cannot write the phantom set ({exc.strerror or exc})") from None
    except EvalkitError as exc:
        fail(exc)


def data_public_annotations(
    out: Annotated[Path, typer.Option(help="Data root to lay the files out in (pass it as --data-root).")] = Path(
        "data"
    ),
    link: Annotated[bool, typer.Option(help="Symlink the package's files instead of copying them.")] = False,
) -> None:
    """Lay out the real annotation files torchxrayvision ships (NIH boxes, IU X-ray reports, VinDr-CXR train boxes,
    PadChest's label table) in the folders the loaders read, so the real-data tasks load before any image exists.

    Needs `pip install --no-deps torchxrayvision==1.5.7` (never imported). Examples:

      evalkit data public-annotations --out data

      evalkit run --model radiologist --task vindr-reader-agreement --data-root data
    """
    from evalkit.data.public_annotations import FILES, write_public_annotations

    try:
        written = write_public_annotations(out, link=link)
    except EvalkitError as exc:
        fail(exc)
    for item, path in zip(FILES, written, strict=True):
        console.print(f"{path}  [dim]{item.dataset}; {item.licence}[/]", highlight=False)
    console.print(
        "VinDr-CXR and PadChest rows are credentialed data: keep them on this disk, out of repositories and public "
        "sites. Tasks: nih-cxr14-bbox-grounding, iu-xray-report (images: your own downloads), "
        "vindr-reader-agreement (no images)."
    )


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    app.command()(demo)
    data_app.command("phantom")(data_phantom)
    data_app.command("public-annotations")(data_public_annotations)
