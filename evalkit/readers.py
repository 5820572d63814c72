"""Reading predictions and report pairs in the formats people already hold, with errors that name file and field.

Formats: JSON lines, a JSON array of objects, a JSON object keyed by id, CSV, Parquet and a Hugging Face
`datasets` folder (`save_to_disk`; read with `datasets` where installed, else with pyarrow). `auto` tells them
apart by content, not only by name, so a JSON document or a Parquet file named `.jsonl` is read as what it is.
Field names are mapped with `Fields` (dotted paths reach into nested values: `doc.id`, `filtered_resps.0`), and
named presets hold the mapping of the field's tools (see `PRESETS`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError

FORMATS = ("auto", "jsonl", "json", "csv", "parquet", "datasets")


@dataclass(frozen=True)
class Fields:
    """Where a record holds its id, prediction and reference (dotted paths; None: the format gives it)."""

    id: str | None = "sample_id"
    prediction: str = "prediction"
    reference: str | None = "reference"


@dataclass(frozen=True)
class Preset:
    """A producing tool's output layout.

    Attributes:
        name: What `--preset` takes.
        fields: Its field names.
        fmt: Its file format.
        id_kind: `field` (the id is a value), `key` (the JSON object's key), `position` (a row number in the
            task's manifest, as lmms-eval's `doc_id`), `stem` (the file name in a path, without extension) or
            `none` (pairs only: the file has no ids).
        id_prefix: Added to an id made only of digits (ReXrank keys MIMIC-CXR studies by the bare study id).
        unwrap: A one-item list holds the text (lmms-eval's `filtered_resps`); elsewhere a list is a structured
            answer (grounding boxes) and is kept whole.
        source: Where the layout is defined.
    """

    name: str
    fields: Fields
    fmt: str
    id_kind: str = "field"
    id_prefix: str = ""
    unwrap: bool = False
    source: str = ""


PRESETS: dict[str, Preset] = {
    "evalkit": Preset("evalkit", Fields(), "auto", source="evalkit: one {sample_id, prediction[, reference]} a line"),
    "lmms-eval": Preset(
        "lmms-eval",
        Fields(id="doc_id", prediction="filtered_resps", reference="target"),
        "jsonl",
        id_kind="position",
        unwrap=True,
        source="lmms-eval --log_samples (EvaluationTracker.save_results_samples); doc_id is the row of the "
        "`evalkit samples` manifest the lmms-eval task was built from",
    ),
    "rexrank": Preset(
        "rexrank",
        Fields(id=None, prediction="model_prediction", reference="findings"),
        "json",
        id_kind="key",
        id_prefix="s",
        source="ReXrank prediction file (example_files/prediction.json): an object keyed by study id",
    ),
    "radvlm-grpo": Preset(
        "radvlm-grpo",
        Fields(id="img_path", prediction="output", reference="answer"),
        "json",
        id_kind="stem",
        source="RadVLM-GRPO evaluate_instructions.py save_results(output=True): a JSON array; img_path ends in "
        "the DICOM id",
    ),
    "radeval": Preset(
        "radeval",
        Fields(id=None, prediction="hyps", reference="refs"),
        "json",
        id_kind="none",
        source="RadEval's inputs on disk: {'refs': [...], 'hyps': [...]} (free pairs only)",
    ),
}


@dataclass
class Row:
    """One record: where it is (for errors), its id (None for pairs), prediction and reference."""

    where: str
    id: Any
    prediction: Any
    reference: Any = None


def detect_format(path: Path) -> str:
    """The file's format from its content (Parquet magic, a folder, a JSON document), else its name."""
    path = Path(path)
    if path.is_dir():
        return "datasets"
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise EvalkitError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    if head == b"PAR1":
        return "parquet"
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    with path.open(encoding="utf-8", errors="replace") as handle:  # the first lines only, not the whole file
        lines = (line.lstrip("\ufeff").strip() for line in iter(handle.readline, ""))
        first = next((line for line in lines if line), "")
        if first.startswith("["):
            return "json"
        if first.startswith("{"):
            try:
                record = json.loads(first)
            except json.JSONDecodeError:
                return "json"
            # One line holding an object of objects is a document keyed by id, not one record.
            more = next((line for line in lines if line), "")
            keyed = not more and record and all(isinstance(v, dict) for v in record.values())
            return "json" if keyed else "jsonl"
    return "jsonl" if path.suffix.lower() != ".json" else "json"


def resolve_fields(
    preset: str | None,
    id_field: str | None = None,
    prediction_field: str | None = None,
    reference_field: str | None = None,
) -> Preset:
    """The preset (default `evalkit`) with the explicit field options on top."""
    name = preset or "evalkit"
    if name not in PRESETS:
        raise EvalkitError(f"--preset must be one of {', '.join(PRESETS)}, not '{name}'")
    chosen = PRESETS[name]
    fields = chosen.fields
    if id_field is not None:
        fields = replace(fields, id=id_field)
        if chosen.id_kind in ("key", "none"):
            chosen = replace(chosen, id_kind="field")
    if prediction_field is not None:
        fields = replace(fields, prediction=prediction_field)
    if reference_field is not None:
        fields = replace(fields, reference=reference_field)
    return replace(chosen, fields=fields)


def _get(record: Any, path: str) -> Any:
    """A dotted path's value (`doc.id`, `filtered_resps.0`); KeyError when absent."""
    value = record
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list | tuple) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(part)
    return value


def _has(record: Any, path: str | None) -> bool:
    if path is None:
        return False
    try:
        _get(record, path)
    except KeyError:
        return False
    return True


def _field_error(path: Path, where: str, field: str, record: Any, option: str) -> EvalkitError:
    have = ", ".join(sorted(map(str, record))) if isinstance(record, dict) else type(record).__name__
    return EvalkitError(
        f"{where}: no field '{field}' (this record has: {have}); pass {option} NAME, or --preset ({', '.join(PRESETS)})"
    )


def _row(path: Path, where: str, record: Any, preset: Preset, key: Any, wanted: Sequence[str]) -> Row:
    if not isinstance(record, dict):
        raise EvalkitError(f"{where}: expected a JSON object (a record), found {type(record).__name__}")
    fields = preset.fields
    values: dict[str, Any] = {"id": key, "prediction": None, "reference": None}
    options = {"id": "--id-field", "prediction": "--prediction-field", "reference": "--reference-field"}
    for name in wanted:
        if name == "id" and preset.id_kind in ("key", "none"):
            continue
        field = getattr(fields, name)
        if field is None:
            raise EvalkitError(f"{path}: the '{preset.name}' layout has no {name}; pass {options[name]} NAME")
        try:
            values[name] = _get(record, field)
        except KeyError:
            raise _field_error(path, where, field, record, options[name]) from None
    return Row(where, values["id"], values["prediction"], values["reference"])


def _json_rows(path: Path, preset: Preset, wanted: Sequence[str]) -> Iterator[Row]:
    text = path.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvalkitError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if preset.id_kind == "none":
        yield from _list_rows(path, document, preset, wanted)
    elif isinstance(document, list):
        for index, record in enumerate(document):
            yield _row(path, f"{path}: item {index}", record, preset, None, wanted)
    elif isinstance(document, dict):
        for key, record in document.items():
            # An object keyed by id: the key is the id, unless the record holds the id field itself.
            keyed = preset
            if preset.id_kind == "field" and not _has(record, preset.fields.id):
                keyed = replace(preset, id_kind="key")
            yield _row(path, f"{path}: key '{key}'", record, keyed, key, wanted)
    else:
        raise EvalkitError(f"{path}: a JSON {type(document).__name__}; expected an array of records or an object")


def _list_rows(path: Path, document: Any, preset: Preset, wanted: Sequence[str]) -> Iterator[Row]:
    """RadEval's layout: parallel lists of references and predictions."""
    fields = preset.fields
    if not isinstance(document, dict):
        raise EvalkitError(f"{path}: expected an object with '{fields.reference}' and '{fields.prediction}' lists")
    lists = {}
    for name in ("prediction", "reference"):
        field = getattr(fields, name)
        if field not in document or not isinstance(document[field], list):
            raise EvalkitError(
                f"{path}: no list '{field}' (the object has: {', '.join(map(str, document))}); pass --{name}-field NAME"
            )
        lists[name] = document[field]
    if len(lists["prediction"]) != len(lists["reference"]):
        raise EvalkitError(
            f"{path}: '{fields.reference}' has {len(lists['reference'])} items but '{fields.prediction}' has "
            f"{len(lists['prediction'])}"
        )
    for index, (pred, ref) in enumerate(zip(lists["prediction"], lists["reference"], strict=True)):
        yield Row(f"{path}: item {index}", None, pred, ref)


def _jsonl_rows(path: Path, preset: Preset, wanted: Sequence[str]) -> Iterator[Row]:
    lines = path.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            hint = ""
            if detect_format(path) == "json":
                hint = " (the file is one JSON document, not JSON lines: pass --format json or leave --format out)"
            raise EvalkitError(f"{path}:{number}: not valid JSON: {exc.msg}{hint}") from exc
        yield _row(path, f"{path}:{number}", record, preset, None, wanted)


def _csv_rows(path: Path, preset: Preset, wanted: Sequence[str]) -> Iterator[Row]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle, dialect="excel-tab" if path.suffix.lower() == ".tsv" else "excel")
        try:
            columns = reader.fieldnames or []
            _check_columns(path, "CSV header", columns, preset, wanted)
            for record in reader:
                yield _row(path, f"{path}:{reader.line_num}", record, preset, None, wanted)
        except csv.Error as exc:  # a cell over csv's field size limit: named, not a traceback
            raise EvalkitError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from exc


def _check_columns(path: Path, what: str, columns: Sequence[str], preset: Preset, wanted: Sequence[str]) -> None:
    """A table's missing column is one error before any row is read."""
    options = {"id": "--id-field", "prediction": "--prediction-field", "reference": "--reference-field"}
    for name in wanted:
        field = getattr(preset.fields, name)
        if name == "id" and preset.id_kind in ("key", "none"):
            raise EvalkitError(f"{path}: a table has no keys; pass --id-field COLUMN")
        if field is None:
            raise EvalkitError(f"{path}: the '{preset.name}' layout has no {name}; pass {options[name]} COLUMN")
        if field.split(".", 1)[0] not in columns:
            raise EvalkitError(
                f"{path}: the {what} has no column '{field}' (columns: {', '.join(columns)}); pass "
                f"{options[name]} COLUMN"
            )


def _table_rows(path: Path, table: Any, what: str, preset: Preset, wanted: Sequence[str]) -> Iterator[Row]:
    _check_columns(path, what, table.column_names, preset, wanted)
    for index, record in enumerate(table.to_pylist()):
        yield _row(path, f"{path}: row {index}", record, preset, None, wanted)


def _parquet_rows(path: Path, preset: Preset, wanted: Sequence[str]) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise EvalkitError(f"{path}: not a readable Parquet file ({exc})") from exc
    yield from _table_rows(path, table, "Parquet file", preset, wanted)


def _datasets_rows(path: Path, preset: Preset, wanted: Sequence[str]) -> Iterator[Row]:
    """A `Dataset.save_to_disk` folder: Arrow stream files listed in state.json (read with pyarrow)."""
    import pyarrow as pa

    state = path / "state.json"
    if (path / "dataset_dict.json").exists():
        splits = sorted(p.name for p in path.iterdir() if (p / "state.json").exists())
        raise EvalkitError(
            f"{path}: a `datasets` DatasetDict folder (splits: {', '.join(splits)}); pass one split's folder, e.g. "
            f"{path / (splits[0] if splits else 'test')}"
        )
    if not state.exists():
        raise EvalkitError(
            f"{path}: a folder, but not a `datasets` save_to_disk folder (no state.json); a DatasetDict's folder "
            "holds one such folder per split: pass that one"
        )
    try:
        files = [path / f["filename"] for f in json.loads(state.read_text())["_data_files"]]
        tables = []
        for file in files:
            with pa.memory_map(str(file)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
    except (OSError, KeyError, ValueError, pa.ArrowInvalid) as exc:
        raise EvalkitError(f"{path}: cannot read the `datasets` folder ({exc})") from exc
    table = pa.concat_tables(tables) if tables else pa.table({})
    yield from _table_rows(path, table, "`datasets` table", preset, wanted)


READERS: dict[str, Callable[[Path, Preset, Sequence[str]], Iterator[Row]]] = {
    "jsonl": _jsonl_rows,
    "json": _json_rows,
    "csv": _csv_rows,
    "parquet": _parquet_rows,
    "datasets": _datasets_rows,
}


def read_rows(
    path: Path, fmt: str = "auto", preset: Preset | None = None, wanted: Sequence[str] = (), what: str = "records"
) -> list[Row]:
    """Every record of a file as `Row`s holding the `wanted` parts (id, prediction, reference); `what` names
    the records in the error for a missing file."""
    path = Path(path)
    preset = preset or PRESETS["evalkit"]
    if fmt not in FORMATS:
        raise EvalkitError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    if not path.exists():
        raise EvalkitError(f"{path}: cannot read {what}: no such file or folder")
    found = detect_format(path)
    if fmt == "auto":
        fmt = "json" if found == "jsonl" and preset.fmt == "json" else found
    elif fmt != found and not (fmt == "json" and found == "jsonl"):
        if found in ("json", "parquet", "datasets") or fmt in ("parquet", "datasets"):
            what = {"json": "one JSON document (not one record a line)", "parquet": "a Parquet file"}.get(found, found)
            what = "a folder" if found == "datasets" else what
            raise EvalkitError(f"{path}: --format {fmt}, but the file is {what}: pass --format {found} or leave it out")
    return list(READERS[fmt](path, preset, wanted))


def _unwrapped(value: Any, preset: Preset) -> Any:
    while preset.unwrap and isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    return value


def prediction_text(value: Any, preset: Preset) -> str:
    """A prediction as the adapter answers it: text as is, anything else (boxes, null) as JSON.

    The same values evalkit's JSON lines always gave, so a predictions file keeps its fingerprint and run id.
    """
    value = _unwrapped(value, preset)
    return value if isinstance(value, str) else json.dumps(value)


def report_text(value: Any, where: str, field: str, preset: Preset) -> str:
    """A report of a free pair as text: None (an empty cell) -> '', lone surrogates made valid UTF-8."""
    value = _unwrapped(value, preset)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EvalkitError(f"{where}: '{field}' must be a string")
    return value.encode("utf-8", "replace").decode("utf-8")


def sample_id_of(row: Row, preset: Preset) -> str:
    """The evalkit sample id of a row (positions are resolved by `resolve_position`)."""
    value = row.id
    if value is None or (isinstance(value, str) and not value.strip()):
        raise EvalkitError(f"{row.where}: empty id ('{preset.fields.id}')")
    if preset.id_kind == "stem":
        return Path(str(value)).stem
    text = str(value)
    if preset.id_prefix and text.isdigit():
        return preset.id_prefix + text
    return text


def read_predictions_file(
    path: Path, fmt: str = "auto", preset: Preset | None = None, sample_ids: Sequence[str] | None = None
) -> dict[str, str]:
    """{sample id: prediction} from any supported file; ids must be unique.

    Args:
        path: The file (or `datasets` folder).
        fmt: One of FORMATS.
        preset: Field layout (default: evalkit's).
        sample_ids: The task's ids in manifest order, for layouts whose id is a row number (lmms-eval's doc_id).
    """
    preset = preset or PRESETS["evalkit"]
    if preset.id_kind == "none":
        raise EvalkitError(
            f"--preset {preset.name} files hold free pairs without sample ids: score them with --pairs, or pass "
            "--id-field"
        )
    predictions: dict[str, str] = {}
    for row in read_rows(path, fmt, preset, ("id", "prediction"), "predictions"):
        if preset.id_kind == "position":
            sample_id = resolve_position(row, preset, sample_ids)
        else:
            sample_id = sample_id_of(row, preset)
        if sample_id in predictions:
            raise EvalkitError(f"{row.where}: {preset.fields.id or 'sample id'} '{sample_id}' appears twice")
        if row.prediction is None:
            # Not the text "null": a missing answer must be said, and an empty one written as "".
            raise EvalkitError(
                f"{row.where}: '{preset.fields.prediction}' is null for sample_id '{sample_id}'; write \"\" for an "
                "empty answer or leave the sample out"
            )
        predictions[sample_id] = prediction_text(row.prediction, preset)
    return predictions


def resolve_position(row: Row, preset: Preset, sample_ids: Sequence[str] | None) -> str:
    """A row number (lmms-eval's doc_id) as the sample id at that row of the task's manifest."""
    if sample_ids is None:
        raise EvalkitError(f"{row.where}: '{preset.fields.id}' is a row number; it needs --task to name its sample")
    try:
        index = int(row.id)
    except (TypeError, ValueError):
        raise EvalkitError(f"{row.where}: '{preset.fields.id}' must be a row number, not {row.id!r}") from None
    if not 0 <= index < len(sample_ids):
        raise EvalkitError(
            f"{row.where}: '{preset.fields.id}' {index} is past the task's {len(sample_ids)} samples (rows of "
            "`evalkit samples --task T`, from 0)"
        )
    return sample_ids[index]


def read_pairs_file(path: Path, fmt: str = "auto", preset: Preset | None = None) -> tuple[list[str], list[str]]:
    """(references, predictions) from any supported file."""
    preset = preset or PRESETS["evalkit"]
    refs, preds = [], []
    for row in read_rows(path, fmt, preset, ("prediction", "reference"), "pairs"):
        refs.append(report_text(row.reference, row.where, preset.fields.reference or "reference", preset))
        preds.append(report_text(row.prediction, row.where, preset.fields.prediction, preset))
    if not refs:
        raise EvalkitError(f"{path}: no pairs (expected records with a reference and a prediction)")
    return refs, preds
