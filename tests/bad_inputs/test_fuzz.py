"""Random-bytes fuzz of the four files users write: predictions, report pairs, task YAML and model-card YAML.

Each file is random bytes, or a valid file with bytes flipped, cut or spliced in. Reading it either works or
raises EvalkitError (a clear message, exit 2 on the CLI): never another exception. The full 1,000 files per kind
are `slow`; a sample of each runs always, and a few go through the CLI end to end.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.config import ModelCard, load_spec
from evalkit.errors import EvalkitError
from evalkit.model_adapters.predictions import read_predictions
from evalkit.registry import load_task
from evalkit.run.pairs import read_pairs

ROOT = Path(__file__).resolve().parents[2]
VALID = {
    "predictions": "".join(
        json.dumps({"sample_id": f"ph-{i:05d}/trachea", "prediction": "[0.1, 0.2, 0.5, 0.6]"}) + "\n" for i in range(4)
    ).encode(),
    "pairs": (
        json.dumps({"reference": "No effusion.", "prediction": "No pleural effusion."})
        + "\n"
        + json.dumps({"reference": "Cardiomegaly.", "prediction": None})
        + "\n"
    ).encode(),
    "task": (ROOT / "tasks" / "phantom-anatomy-grounding.yaml").read_bytes(),
    "card": (ROOT / "evalkit" / "model_adapters" / "cards" / "nn-retrieval.yaml").read_bytes(),
}
READERS: dict[str, Callable[[Path], object]] = {
    "predictions": read_predictions,
    "pairs": read_pairs,
    "task": load_task,
    "card": lambda path: load_spec(ModelCard, path),
}
SUFFIX = {"predictions": ".jsonl", "pairs": ".jsonl", "task": ".yaml", "card": ".yaml"}


def fuzzed(kind: str, index: int) -> bytes:
    """Deterministic hostile bytes: pure noise, or the valid file flipped, truncated or spliced."""
    rng = random.Random(f"{kind}-{index}")
    data = bytearray(VALID[kind])
    mode = index % 4
    if mode == 0:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 400)))
    if mode == 1:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.getrandbits(8)
    elif mode == 2:
        data = data[: rng.randrange(len(data))]
    else:
        at = rng.randrange(len(data))
        noise = bytes(
            rng.choice(b"{}[]:,\"'\\\n\t -#&*!|>%@`0123456789.eE\x00\xff\xfe") for _ in range(rng.randint(1, 30))
        )
        data[at:at] = noise
    return bytes(data)


def _check(kind: str, indices: range, tmp_path: Path) -> int:
    errors = 0
    for index in indices:
        path = tmp_path / f"{kind}-{index}{SUFFIX[kind]}"
        path.write_bytes(fuzzed(kind, index))
        try:
            READERS[kind](path)
        except EvalkitError as exc:
            assert str(exc), (kind, index)
            errors += 1
        except Exception as exc:  # the finding: anything but a clear error
            raise AssertionError(f"{kind} #{index}: {type(exc).__name__}: {exc}\n{path.read_bytes()!r}") from exc
    return errors


@pytest.mark.parametrize("kind", sorted(VALID))
def test_fuzzed_files_never_raise_anything_but_a_clear_error(kind, tmp_path):
    errors = _check(kind, range(100), tmp_path)
    assert errors > 10  # the fuzz does produce bad files (it is not testing only valid ones)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(VALID))
def test_fuzzed_files_thousand_each(kind, tmp_path):
    _check(kind, range(100, 1100), tmp_path)


@pytest.mark.parametrize("index", range(0, 8))
def test_fuzzed_files_through_the_cli(index, tmp_path, data_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "r.duckdb")
    runs = {
        "predictions": [
            "score",
            "-t",
            "phantom-anatomy-grounding",
            "--predictions",
            "f.jsonl",
            "--model-name",
            "fz",
            "--db",
            db,
            "--data-root",
            str(data_root),
        ],
        "pairs": ["score", "--pairs", "f.jsonl", "--metrics", "rouge_l", "--db", db],
        "task": ["run", "-m", "prior-box", "-t", "f.yaml", "--db", db, "--data-root", str(data_root), "--limit", "1"],
        "card": [
            "run",
            "-m",
            "f.yaml",
            "-t",
            "phantom-anatomy-grounding",
            "--db",
            db,
            "--data-root",
            str(data_root),
            "--limit",
            "1",
        ],
    }
    for kind, argv in runs.items():
        (tmp_path / f"f{SUFFIX[kind]}").write_bytes(fuzzed(kind, index))
        result = CliRunner().invoke(app, argv)
        assert result.exit_code in (0, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert "Traceback" not in result.output
