"""`iu-xray-report-rexrank`: ReXrank's 590-report IU X-ray test split and its "Findings: ... Impression: ..."
references, read from the public IU X-ray XML (torchxrayvision's copy) and ReXrank's split file."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import FIXTURES

from evalkit.config import DatasetSpec
from evalkit.data import get_loader
from evalkit.errors import EvalkitError

if importlib.util.find_spec("torchxrayvision") is None:
    pytest.skip("torchxrayvision==1.5.7 is not installed (its IU X-ray XML is the test input): "
                "pip install --no-deps torchxrayvision==1.5.7", allow_module_level=True)  # fmt: skip

IDS = FIXTURES / "rexrank_iu_xray_test_ids.txt"


@pytest.fixture(scope="module")
def iu_root(tmp_path_factory) -> Path:
    from evalkit.data.public_annotations import write_public_annotations

    root = Path(write_public_annotations(tmp_path_factory.mktemp("public"))[0]).parents[1]
    ids = [line for line in IDS.read_text().splitlines() if line and not line.startswith("#")]
    # ReXrank's file shape: one object per `<report>_<image>` key (only the keys are read).
    (root / "iu_xray" / "ReXRank_IUXray_test.json").write_text(json.dumps({f"{i}_IM-0000": {} for i in ids}))
    return root


def _load(root: Path, **options):
    return get_loader("iu_xray")(DatasetSpec(loader="iu_xray", options=options), root / "iu_xray", "t", "test")


@pytest.mark.slow  # reads the 3,955 IU X-ray reports from the archive (~5 s)
def test_the_task_loads_the_590_reports_with_rexrank_references(iu_root):
    from evalkit.registry import resolve_tasks
    from evalkit.run.runner import load_samples

    (task,) = resolve_tasks("iu-xray-report-rexrank")
    samples = load_samples(task, iu_root)
    ids = [line for line in IDS.read_text().splitlines() if line and not line.startswith("#")]
    assert len(samples) == 590 and [s.sample_id for s in samples] == ids  # ReXrank's order
    assert all(s.reference_text.startswith("Findings: ") and " Impression: " in s.reference_text for s in samples)
    first = samples[0]
    assert first.sample_id == "CXR3030"
    assert first.reference_text == (
        "Findings: Normal cardiomediastinal silhouette. There is no focal consolidation. There are no XXXX of a large "
        "pleural effusion. There is no pneumothorax. There is no acute bony abnormality seen. Impression: There is "
        "no radiographic evidence of acute cardiopulmonary disease."
    )  # as ReXrank's JSON prints it
    # 10 listed reports have no image known to be frontal: their first image is taken, as ReXrank's key image.
    assert sum(1 for s in samples if s.meta["view"] not in ("PA", "AP")) == 10


@pytest.mark.slow
def test_the_text_list_and_the_default_reference_and_errors(iu_root, tmp_path):
    shutil.copy(IDS, iu_root / "iu_xray" / "ids.txt")
    listed = _load(iu_root, split_file="ids.txt")
    assert len(listed) == 590 and listed[0].meta["split_file"] == "ids.txt"
    findings_only = {s.sample_id: s.reference_text for s in _load(iu_root, split_file="ids.txt",
                                                                   reference="findings_else_impression")}  # fmt: skip
    assert not findings_only["CXR3030"].startswith("Findings:")
    # The split file is the task's test split; its train split (retrieval, few-shot) holds none of those reports.
    train = get_loader("iu_xray")(DatasetSpec(loader="iu_xray", options={"split_file": "ids.txt"}), iu_root / "iu_xray",
                                  "t", "train")  # fmt: skip
    assert train and not {s.sample_id for s in train} & {s.sample_id for s in listed}
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x00\xff")
    with pytest.raises(EvalkitError, match="expected IU X-ray report ids"):
        _load(iu_root, split_file=str(tmp_path / "binary.txt"))
    with pytest.raises(
        EvalkitError, match=re.escape("ReXRank_IUXray_test.json from https://github.com/rajpurkarlab/ReXrank")
    ):
        _load(iu_root, split_file="missing.json")
    (tmp_path / "bad.txt").write_text("CXR1\nnot-an-id\n")
    with pytest.raises(EvalkitError, match="expected IU X-ray report ids such as CXR3030, found \\['not-an-id'\\]"):
        _load(iu_root, split_file=str(tmp_path / "bad.txt"))
    with pytest.raises(EvalkitError, match="reference='both'"):
        _load(iu_root, split_file="ids.txt", reference="both")
