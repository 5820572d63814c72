"""`evalkit samples`: a task's manifest (ids, images, prompts, references), to run a model anywhere and score
its answers back with `evalkit score --predictions` (docs/importing.md has each task's sample-id scheme)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from evalkit.cli._common import err, fail
from evalkit.errors import EvalkitError

FORMATS = ("jsonl", "csv", "parquet")


def manifest_rows(
    task: str,
    data_root: Path | None = None,
    model: str | None = None,
    with_images: bool = False,
    shard: str | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """(task spec, one row per sample in the task's order): the rows `evalkit samples` writes.

    Args:
        task: One task's name or YAML path.
        data_root: Folder holding the data sets (default: $EVALKIT_DATA_ROOT or ./data).
        model: A card whose prompt to render (its report prompt, box-format hint, suffix, system prompt);
            default: the task's own prompt, as a card without any of these gets it.
        with_images: Add each image's bytes (`images`).
        shard: `i/N`: only the samples of that shard (evalkit/run/shards.py).
    """
    from evalkit.config import ModelCard
    from evalkit.registry import resolve_model, resolve_tasks
    from evalkit.run.prompts import render_prompt
    from evalkit.run.runner import data_root_default, load_samples

    specs = resolve_tasks(task)
    if len(specs) != 1:
        raise EvalkitError(f"--task must name one task, '{task}' is a group of {len(specs)}")
    spec = specs[0]
    root = Path(data_root) if data_root is not None else data_root_default()
    card = resolve_model(model) if model else ModelCard(name="manifest", adapter="external", checkpoint="-")
    numbered = list(enumerate(load_samples(spec, root)))  # rows number the whole task, sharded or not
    if shard is not None:
        from evalkit.run.shards import parse_shard, shard_of

        index, count = parse_shard(shard)
        numbered = [(n, s) for n, s in numbered if shard_of(s.sample_id, count) == index]
    rows = []
    for row_number, s in numbered:
        system, prompt = render_prompt(spec, card, s)
        row: dict[str, Any] = {
            "row": row_number,
            "sample_id": s.sample_id,
            "task": spec.name,
            "image_paths": [_relative(p, root) for p in s.image_paths],
            "system_prompt": system,
            "prompt": prompt,
            "reference": s.reference_text,
            "reference_boxes": s.reference_boxes,
            "reference_labels": s.reference_labels,
            "cluster": s.cluster,
        }
        if with_images:
            row["images"] = [_read_image(p) for p in s.image_paths]
        rows.append(row)
    return spec, rows


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)  # an image outside the data root (an images_root option): kept as given


def _read_image(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise EvalkitError(f"{path}: cannot read the image for --with-images ({exc.strerror or exc})") from exc


def write_manifest(rows: Sequence[dict[str, Any]], fmt: str, out: Path | None) -> None:
    """JSON lines or CSV (lists as JSON, image bytes as base64) or Parquet (image bytes as binary)."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(list(rows)), out)
        return
    flat = [{k: _text_value(v, fmt) for k, v in r.items()} for r in rows]
    handle = out.open("w", encoding="utf-8", newline="") if out is not None else sys.stdout
    try:
        if fmt == "jsonl":
            for r in flat:
                handle.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            import csv

            writer = csv.DictWriter(handle, fieldnames=list(flat[0]) if flat else ["sample_id"])
            writer.writeheader()
            writer.writerows(flat)
    finally:
        if out is not None:
            handle.close()


def _text_value(value: Any, fmt: str) -> Any:
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        value = [base64.b64encode(v).decode("ascii") for v in value]
    if fmt == "csv" and isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def samples(
    task: Annotated[str, typer.Option("--task", "-t", help="Task name or task YAML path.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv | parquet")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout for jsonl/csv).")] = None,
    data_root: Annotated[
        Path | None,
        typer.Option("--data-root", help="Folder holding the data sets (default: $EVALKIT_DATA_ROOT or ./data)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Render the prompt this card gets (default: the task's).")
    ] = None,
    with_images: Annotated[
        bool, typer.Option("--with-images", help="Embed the image bytes (base64 in jsonl/csv, binary in parquet).")
    ] = False,
    shard: Annotated[str | None, typer.Option("--shard", help="i/N: only that shard's samples.")] = None,
) -> None:
    """Write a task's manifest: row, sample id, image paths (relative to the data root), prompt, reference, cluster.

    Run a model anywhere on it, then score the answers back by id:

      evalkit samples --task phantom-report --out phantom-report.jsonl

      evalkit score --task phantom-report --predictions answers.jsonl --model-name mine

    A credentialed task's manifest holds credentialed data: keep it on your disk (never in a repository or site).
    """
    try:
        if fmt not in FORMATS:
            raise EvalkitError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'")
        if fmt == "parquet" and out is None:
            raise EvalkitError("--format parquet needs --out FILE")
        if out is not None and out.is_dir():
            raise EvalkitError(f"--out {out} is a folder; give a file name, e.g. --out {out / ('samples.' + fmt)}")
        spec, rows = manifest_rows(task, data_root, model, with_images, shard)
        try:
            write_manifest(rows, fmt, out)
        except OSError as exc:
            raise EvalkitError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    except EvalkitError as exc:
        fail(exc)
    if spec.access == "credentialed":
        err.print(
            f"{spec.name} is credentialed data: keep this manifest on your disk, out of repositories and public sites",
            highlight=False,
        )
    if out is not None:
        err.print(f"wrote {len(rows)} samples of {spec.name} to {out}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("samples")(samples)
