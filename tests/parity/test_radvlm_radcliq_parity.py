"""RadCliQ-v1 under the radvlm-grpo profile equals RadVLM-GRPO's own reward worker on tiny random models.

Fixture: tests/fixtures/radvlm_radcliq_reference.json, made by tests/fixtures/make_radvlm_radcliq_reference.py with
the seed's worker + RadEval `CompositeMetric` (transformers 4.57) and the same tiny weights. Tolerance: the features
are float32 model outputs (BERTScore, CheXbert [CLS] cosine) computed in different batch shapes, ~1e-7 each; the
linear model multiplies them by at most |w| / scale = 1.65, so 1e-5 on the score leaves a wide margin.
"""

from __future__ import annotations

import json

import pytest
from helpers import FIXTURES
from helpers.clinical import all_options, radgraph_folder

from evalkit.metrics import get_metric
from evalkit.profiles import get_profile
from evalkit.sample import Parsed, Sample

FIXTURE = json.loads(FIXTURES.joinpath("radvlm_radcliq_reference.json").read_text())


def _worker_metric():
    options = dict(all_options()["radcliq_v1"])
    options["radgraph"] = {"model_dir": str(radgraph_folder("radgraph-xl")), "device": "cpu"}
    return get_metric("radcliq_v1", **get_profile("radvlm-grpo").options_for("radcliq_v1", options))


@pytest.mark.slow  # loads three tiny models and annotates ~20 texts (~10 s on a shared CPU)
def test_radcliq_equals_the_seed_worker() -> None:
    metric = _worker_metric()
    assert metric.available() is None and metric.convention == "radvlm_grpo_worker"
    assert metric.radgraph.model_type == "radgraph-xl" and not metric.bertscore.collapse_spaces
    pairs = FIXTURE["pairs"]
    samples = [Sample(f"s{i}", "t", [], reference_text=p["reference"]) for i, p in enumerate(pairs)]
    scores = metric.score([Parsed(answer=p["prediction"]) for p in pairs], samples)
    got = [s.value for s in scores]
    assert got == pytest.approx(FIXTURE["radcliq"], abs=1e-5)
    # The worker's rules: 3.0 for a text of 5 characters or fewer (or empty), on either side.
    assert [v == 3.0 for v in got] == [r == -3.0 for r in FIXTURE["worker_reward"]]


def test_unknown_convention_is_refused() -> None:
    from evalkit.errors import EvalkitError

    with pytest.raises(EvalkitError, match="convention"):
        get_metric("radcliq_v1", convention="radeval")
