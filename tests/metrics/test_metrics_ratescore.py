"""RaTEScore: evalkit's implementation against the `ratescore` package's own code (0.6.0, run in a side environment
by tests/fixtures/make_ratescore_reference.py on tiny random models of its real architectures)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import FIXTURES

from evalkit.metrics import get_metric
from evalkit.metrics.ratescore import (
    AFFINITY,
    NO_ENTITY_SCORE,
    RaTEModels,
    decode_spans,
    keep_sentence,
    pair_score,
    ratescores,
)
from evalkit.profiles import get_profile

FIXTURE = json.loads((FIXTURES / "ratescore_reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from evalkit.testing.tiny_ratescore import write_tiny_ratescore

    return write_tiny_ratescore(tmp_path_factory.mktemp("ratescore"))


def _sentences(texts):
    return [FIXTURE["sentences"][t] for t in texts]


@pytest.mark.slow  # builds and loads the two tiny models (~8 s for the three tiny-model tests together)
@pytest.mark.parametrize("batch_size", [1, 4])
def test_entities_are_the_package_run_ner(tiny, batch_size):
    models = RaTEModels(tiny["ner"], tiny["embed"], batch_size=batch_size)
    texts = sorted(FIXTURE["entities"])
    found = models.entities(_sentences(texts))
    assert [[list(e) for e in f] for f in found] == [FIXTURE["entities"][t] for t in texts]
    assert sum(len(e) for e in found) >= 10  # the tiny tagger finds entities of several types
    assert len({kind for f in found for _, kind in f}) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("matrix", ["long", "short"])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_scores_are_the_package_compute_score(tiny, matrix, batch_size):
    models = RaTEModels(tiny["ner"], tiny["embed"], batch_size=batch_size)
    refs, preds = zip(*FIXTURE["pairs"], strict=True)
    values = ratescores(models, _sentences(refs), _sentences(preds), matrix)
    expected = FIXTURE["scores"][f"{matrix}_batch{batch_size}"]
    assert values == pytest.approx(expected, abs=1e-6)
    assert len({round(v, 6) for v in values}) >= 3  # not all the no-entity 0.5


@pytest.mark.slow
def test_a_text_without_sentences_scores_alone_not_shifting_the_others(tiny):
    """The package pairs later reports with the wrong ones after an empty text (fixture `empty_case`); evalkit
    scores each pair on its own."""
    case = FIXTURE["empty_case"]
    assert len(case["scores"]) == len(case["references"]) - 1  # the package's shift, as recorded
    models = RaTEModels(tiny["ner"], tiny["embed"])
    split = [[s] if keep_sentence(s) else [] for s in case["references"]]
    pred_split = [[s] for s in case["predictions"]]
    together = ratescores(models, split, pred_split, "short")
    alone = [ratescores(models, [r], [p], "short")[0] for r, p in zip(split, pred_split, strict=True)]
    assert together == pytest.approx(alone, abs=1e-6) and together[1] == NO_ENTITY_SCORE


@pytest.mark.parametrize(("tags", "entities"), FIXTURE["spans"])
def test_decode_spans_is_the_package_post_process(tags, entities):
    tokens = FIXTURE["span_tokens"]
    assert [[" ".join(tokens[a : b + 1]), kind] for a, b, kind in decode_spans(tokens, tags)] == entities


def test_decode_spans_by_hand():
    tokens = ["[CLS]", "mild", "pleural", "effusion", "[SEP]"]
    assert decode_spans(tokens, ["O", "B-DISEASE", "I-DISEASE", "O", "O"]) == [(1, 2, "DISEASE")]
    # an I tag with no entity open starts none; one still open at the end runs up to the token before [SEP]
    assert decode_spans(tokens, ["O", "I-ANATOMY", "O", "B-DISEASE", "I-DISEASE"]) == [(3, 3, "DISEASE")]
    # ... unless an entity was closed by a following B tag before it (the package's `end` stays set): dropped
    assert decode_spans(tokens, ["O", "B-ANATOMY", "B-DISEASE", "I-DISEASE", "I-DISEASE"]) == [(1, 1, "ANATOMY")]


def test_pair_score_by_hand():
    import torch

    same = (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), ["DISEASE", "ANATOMY"])
    assert pair_score(same, same, "long") == pytest.approx(1.0)
    assert pair_score(same, (torch.zeros((0, 0)), []), "long") == NO_ENTITY_SCORE
    # one negated entity against its positive type, identical embedding: similarity 1 scaled by neg_weight
    negated = (torch.tensor([[1.0, 0.0]]), ["NON-DISEASE"])
    positive = (torch.tensor([[1.0, 0.0]]), ["DISEASE"])
    assert pair_score(positive, negated, "long") == pytest.approx(0.8716553966489615)
    assert AFFINITY["long"][("NON-DISEASE", "DISEASE")] == pytest.approx(0.10073046076318157)


@pytest.mark.skipif(
    importlib.util.find_spec("medspacy") is None, reason="medspacy (RaTEScore's splitter) not installed"
)
def test_sentence_split_is_the_package_one():
    from evalkit.metrics.ratescore import split_sentences

    texts = sorted(FIXTURE["sentences"])
    assert split_sentences(texts) == [FIXTURE["sentences"][t] for t in texts]


def test_unavailable_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    reason = get_metric("ratescore").available()
    assert reason and ("medspacy" in reason or "RaTE-NER-Deberta" in reason)
    if importlib.util.find_spec("medspacy") is not None:
        assert "BioLORD-2023-C" in reason and "EVALKIT_METRIC_WEIGHTS" in reason


def test_in_the_rexrank_profile_and_task():
    from evalkit.registry import all_tasks

    assert get_profile("rexrank").options_for("ratescore") == {"affinity_matrix": "long"}
    assert "ratescore" in [m.name for m in all_tasks()["iu-xray-report-rexrank"].metrics]


@pytest.mark.slow
def test_metric_loads_weights_by_name_and_scores_like_the_package(tiny, monkeypatch, tmp_path):
    """The metric's real loading path: models found under $EVALKIT_METRIC_WEIGHTS by their Hub names' last part;
    sentences from the fixture (medspacy is not in the project venv; the split is tested where it is)."""
    import shutil

    import evalkit.metrics.ratescore as module
    from evalkit.sample import Parsed, Sample

    shutil.copytree(tiny["ner"], tmp_path / "RaTE-NER-Deberta")
    shutil.copytree(tiny["embed"], tmp_path / "BioLORD-2023-C")
    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(module, "split_sentences", _sentences)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # medspacy "installed"; every other lookup unchanged
        importlib.util, "find_spec", lambda name, *rest: object() if name == "medspacy" else real_find_spec(name, *rest)
    )
    metric = get_metric("ratescore", affinity_matrix="short", batch_size=4)
    assert metric.available() is None and metric.fingerprint()
    refs, preds = zip(*FIXTURE["pairs"], strict=True)
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]
    values = [s.value for s in metric.score([Parsed(answer=p) for p in preds], samples)]
    assert values == pytest.approx(FIXTURE["scores"]["short_batch4"], abs=1e-6)
    assert metric.aggregate(values, [{}] * len(values)) == pytest.approx(sum(values) / len(values))
