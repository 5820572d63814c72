"""Reading user JSONL files (predictions, report pairs) with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError


def read_records(path: Path, fields: Sequence[str], what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line; each record must be an object holding `fields`.

    Bytes that are not UTF-8 are replaced (U+FFFD) rather than refused: one bad line must not stop a scorer. A
    leading byte-order mark (files saved by Windows editors) is skipped.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise EvalkitError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    wanted = " and ".join(f"'{f}'" for f in fields)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalkitError(f"{path}:{number}: not valid JSON: {exc.msg}") from exc
        except RecursionError:
            raise EvalkitError(f"{path}:{number}: JSON nested too deeply to read") from None
        if not isinstance(record, dict) or any(f not in record for f in fields):
            raise EvalkitError(f"{path}:{number}: each line needs the fields {wanted}")
        yield number, record
