"""`evalkit demo`: the whole job on the phantom set, offline, on a CPU.

Besides the baselines and the random tiny model, the demo runs the checkpoints the CPU training recipe made
(`evalkit/model_adapters/checkpoints/`: untrained, SFT and SFT+GRPO of one seed, remade with
`evalkit train demo --seeds 0 --ship`), so its leaderboard shows what SFT and GRPO each add.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from evalkit.cli._common import DataRootOption, DbOption, console, err, fail, interrupted
from evalkit.cli.leaderboard import print_leaderboard
from evalkit.config import ModelCard
from evalkit.errors import EvalkitError
from evalkit.model_adapters.registry import adapter_entry
from evalkit.registry import all_cards, all_tasks, resolve_model, shipped_checkpoints
from evalkit.results.store import DEFAULT_DB, Store
from evalkit.run.evaluate import evaluate
from evalkit.views.leaderboard import leaderboard_rows

# The training recipe's checkpoints run in this order: untrained, SFT, SFT+GRPO.
SHIPPED_ORDER = ("demo-qwen3vl-base", "demo-qwen3vl-sft", "demo-qwen3vl-sft-grpo")
LOCAL_BATCH_SIZE = 32


def shipped_cards() -> list[ModelCard]:
    """Cards of the checkpoints shipped by the CPU training recipe (each folder holds its evalkit_card.yaml).

    The untrained base ships without weights (they are a seeded random init); resolving it by name recreates
    them once in the user cache (evalkit.testing.tiny_qwen3vl.materialize_base).
    """
    rank = {name: i for i, name in enumerate(SHIPPED_ORDER)}
    names = sorted(shipped_checkpoints(), key=lambda name: (rank.get(name, len(rank)), name))
    return [resolve_model(name) for name in names]


def demo_cards(tiny_model: bool) -> list[ModelCard]:
    """Every card that runs here without a GPU or a server: baselines, locally built models (the tiny one when
    `tiny_model`), local checkpoint folders that exist; then the shipped checkpoints."""
    cards = []
    for card in all_cards().values():
        if not adapter_entry(card).local:
            continue
        if card.options.get("build"):
            if tiny_model:
                cards.append(resolve_model(card.name))
        elif not adapter_entry(card).generates or Path(card.checkpoint).is_dir():
            cards.append(card)
    return cards + shipped_cards()


def run_demo(
    db: Path, data_root: Path | None, *, limit: int | None = None, tiny_model: bool = True, console: Console
) -> list[dict[str, Any]]:
    tasks = [t for t in all_tasks().values() if t.dataset.loader == "phantom"]
    with Store(db) as store:
        for card in demo_cards(tiny_model):
            evaluate(
                card,
                tasks,
                db=store,
                data_root=data_root,
                limit=limit,
                batch_size=LOCAL_BATCH_SIZE if adapter_entry(card).generates else None,
                # The demo's models are tiny and run on the CPU anywhere; naming it spares asking torch for CUDA.
                device="cpu" if adapter_entry(card).generates else None,
                skip_unsupported=True,
                progress=True,
                on_summary=lambda s: console.print(
                    f"{s.task:34s} {s.model:22s} n={s.n_samples:4d} generated={s.generated:4d} "
                    f"cached={s.from_cache + s.reused:4d} ({s.seconds:.1f}s)"
                    + (f"  {s.parse_failures} answer(s) failed to parse" if s.parse_failures else ""),
                    highlight=False,
                    markup=False,
                ),
            )
        return leaderboard_rows(store)


# --- the commands: `evalkit demo`, `evalkit data ...` --------------------------------------------------------
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
    from evalkit.cli.demo import run_demo

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
