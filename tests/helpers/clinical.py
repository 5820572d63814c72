"""Tiny random clinical models (real architectures), built once per test session and shared by the test modules.

Also the reference numbers recorded by tests/fixtures/make_clinical_reference.py with the reference packages.
"""

from __future__ import annotations

import json
import tempfile
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "clinical_reference.json"


@lru_cache(maxsize=1)
def reference() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def root() -> Path:
    return Path(tempfile.mkdtemp(prefix="evalkit-tiny-clinical-"))


@lru_cache(maxsize=1)
def all_options() -> dict[str, dict[str, Any]]:
    """Options pointing every clinical metric at the tiny models (evalkit.testing.tiny_clinical.write_all)."""
    from evalkit.testing import tiny_clinical

    return tiny_clinical.write_all(root() / "all")


@cache
def radgraph_folder(model_type: str) -> Path:
    from evalkit.testing import tiny_clinical

    folder, _ = tiny_clinical.write_tiny_radgraph(root() / f"radgraph-{model_type}", model_type)
    return folder


@lru_cache(maxsize=1)
def chexbert_files() -> tuple[Path, Path]:
    from evalkit.testing import tiny_clinical

    return tiny_clinical.write_tiny_chexbert(root() / "chexbert")


@lru_cache(maxsize=1)
def cxr_report_metric_models() -> dict[str, Any]:
    """The tiny models tests/fixtures/make_cxr_report_metric_reference.py gave CXR-Report-Metric's own code (a
    6-layer distilroberta for bert-score's layer 5, the CheXbert checkpoint), their digests, and the RadCliQ
    options that point evalkit at them (RadGraph: the tiny "radgraph" model of clinical_reference.json)."""
    from evalkit.testing import tiny_clinical

    folder = root() / "cxr-report-metric"
    checkpoint, bert = tiny_clinical.write_tiny_chexbert(folder / "chexbert")
    roberta = tiny_clinical.write_tiny_roberta(folder / "distilroberta-base", layers=6)
    tiny_clinical.save_bert_weights(roberta, 0.3)
    digests = {
        "chexbert": tiny_clinical.checkpoint_digest(checkpoint),
        "chexbert_tokenizer": tiny_clinical.files_digest(bert, ("vocab.txt",)),
        "distilroberta": tiny_clinical.folder_weights_digest(roberta),
        "distilroberta_tokenizer": tiny_clinical.files_digest(roberta, ("vocab.json", "merges.txt")),
    }
    options = {
        "radgraph": {"model_dir": str(radgraph_folder("radgraph")), "model_type": "radgraph", "device": "cpu"},
        "chexbert": {"checkpoint": str(checkpoint), "tokenizer": str(bert), "device": "cpu"},
        "bertscore": {"model_path": str(roberta), "device": "cpu"},  # layer 5, bert-score's packaged baseline
    }
    return {"digests": digests, "options": options}
