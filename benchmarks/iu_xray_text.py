"""Real report text for the benchmarks: IU X-ray reports paired with their nearest other reports.

The references are the findings (else impression) of every IU X-ray report the `iu_xray` loader keeps (split
`all`, 3,611 reports from torchxrayvision's copy of the Open-i archive). "System A" answers each with the most
similar *other* report by TF-IDF cosine (a retrieval baseline, as the literature reports one), "system B" with the
second most similar, so timings and value distributions come from real radiology language, duplicates and all
(many normal IU reports are word for word the same), not from templates.

    python benchmarks/report_metrics.py --texts iu-xray
    python benchmarks/stats.py --texts iu-xray
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def iu_reports() -> list[str]:
    """The reference texts of the `iu_xray` loader's split `all`, in report-file order."""
    from evalkit.config import DatasetSpec
    from evalkit.data import get_loader
    from evalkit.data.public_annotations import write_public_annotations

    with tempfile.TemporaryDirectory(prefix="evalkit-iu-") as folder:
        write_public_annotations(Path(folder), link=True)
        samples = get_loader("iu_xray")(DatasetSpec(loader="iu_xray"), Path(folder) / "iu_xray", "bench", "all")
    return [s.reference_text or "" for s in samples]


def nearest_other(texts: list[str], rank: int = 1) -> list[str]:
    """For each text, the `rank`-th most similar other text (TF-IDF cosine; ties broken by position)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer(lowercase=True, sublinear_tf=True).fit_transform(texts)
    similarity = (vectors @ vectors.T).toarray()
    np.fill_diagonal(similarity, -np.inf)  # never the report itself
    order = np.argsort(-similarity, axis=1, kind="stable")
    return [texts[order[i, rank - 1]] for i in range(len(texts))]


def iu_report_pairs(n: int | None = None) -> tuple[list[str], list[str], list[str]]:
    """(references, nearest other report, second nearest) for the first `n` reports (all by default)."""
    references = iu_reports()
    system_a, system_b = nearest_other(references, 1), nearest_other(references, 2)
    return references[:n], system_a[:n], system_b[:n]
