"""Per-sample RL-health diagnostics on hand-computed cases, and the weight-free finding labeller against the
phantom's own labels."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.oracle import assert_close, generic

from evalkit.metrics import get_metric
from evalkit.metrics._finding_labels import label_text
from evalkit.metrics.health_text import label_rates
from evalkit.sample import Parsed, Sample
from evalkit.stats import Resampler, bootstrap_distribution


def _score(name: str, answers: list[str], refs: list[str], parsed: list[Parsed] | None = None):
    metric = get_metric(name)
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]
    scores = metric.score(parsed or [Parsed(answer=a) for a in answers], samples)
    values, stats = [s.value for s in scores], [s.stats for s in scores]
    return metric, values, stats


def test_length_and_degeneration_values():
    answers = ["No effusion. No effusion.  Heart normal.", "", "a b c a b c a b"]
    refs = ["0123456789", "abcd", ""]
    _, values, _ = _score("answer_words", answers, refs)
    assert values == [6.0, 0.0, 8.0]
    _, values, _ = _score("length_ratio", answers, refs)
    assert values == [pytest.approx(len(answers[0]) / 10), 0.0, None]  # no reference: left out
    _, values, _ = _score("empty_answer", answers, refs)
    assert values == [0.0, 1.0, 0.0]
    _, values, _ = _score("repeated_sentences", answers, refs)
    assert values == [pytest.approx(1 / 3), 0.0, 0.0]
    # "a b c a b c a b": trigrams abc bca cab abc bca cab -> 3 repeats of 6.
    _, values, _ = _score("repeated_trigrams", answers, refs)
    assert values == [0.0, 0.0, pytest.approx(3 / 6)]


def test_thinking_hygiene():
    parsed = [
        Parsed(answer="", thinking="the heart is enlarged", parse_error="thinking not closed: no </think> in ..."),
        Parsed(answer="Moderate cardiomegaly.", thinking="the heart is enlarged"),
        Parsed(answer="Normal.", thinking="there is a small left pleural effusion"),
    ]
    _, values, _ = _score("unclosed_think", [], ["r"] * 3, parsed)
    assert values == [1.0, 0.0, 0.0]
    _, values, _ = _score("thinking_chars", [], ["r"] * 3, parsed)
    assert values == [21.0, 21.0, 38.0]
    _, values, _ = _score("thinking_only_findings", [], ["r"] * 3, parsed)
    assert values == [1.0, 0.0, 1.0]


def test_labeller_polarity_and_hierarchy():
    labels = label_text("There is a small left pleural effusion. No pneumothorax. Heart size is normal.")
    assert labels.positive == {"Pleural Effusion"}
    assert labels.negative == {"Pneumothorax", "Cardiomegaly"}
    flipped = label_text("There is no small left pleural effusion. Pneumothorax.")
    assert flipped.positive == {"Pneumothorax"} and flipped.negative == {"Pleural Effusion"}
    # A child asserts its CheXpert parent; negating the child leaves the parent alone.
    assert label_text("Moderate cardiomegaly.").positive == {"Cardiomegaly", "Enlarged Cardiomediastinum"}
    assert label_text("No focal consolidation.").negative == {"Consolidation"}
    # Devices alone are not abnormal; "pleural line" is no device.
    assert not label_text("Endotracheal tube in place.").abnormal
    assert label_text("Pneumothorax with a visible pleural line.").positive == {"Pneumothorax"}


def test_labeller_reproduces_the_phantom_labels(data_root):
    from evalkit.registry import resolve_tasks
    from evalkit.run.runner import load_samples

    samples = load_samples(resolve_tasks("phantom-report")[0], data_root)
    assert samples
    for sample in samples:
        chexpert = sample.meta["chexpert"]
        labels = label_text(sample.reference_text)
        assert set(labels.positive) == {k for k, v in chexpert.items() if v == 1.0 and k != "No Finding"}
        assert set(labels.negative) == {k for k, v in chexpert.items() if v == 0.0}


REFS = [
    "There is a small left pleural effusion. The heart is enlarged. No pneumothorax.",
    "The lungs are clear. No pleural effusion or pneumothorax.",
]


def test_finding_rates_hand_computed():
    # Sample 0: reference asserts effusion, cardiomegaly (+ enlarged cardiomediastinum), negates pneumothorax.
    # The answer keeps the effusion, invents a nodule, and says "no pneumothorax" correctly.
    # Sample 1: reference asserts nothing, negates opacity, effusion, pneumothorax; the answer flips effusion.
    answers = ["There is a small left pleural effusion. Right upper lobe nodule. No pneumothorax.", "Pleural effusion."]
    metric, values, stats = _score("omission_rate", answers, REFS)
    assert values == [pytest.approx(2 / 3), None]
    assert metric.aggregate(values, stats) == pytest.approx(2 / 3)
    # Invention: over the observations the reference does not assert (12 labels: 12 - 3 and 12 - 0).
    metric, values, stats = _score("invention_rate", answers, REFS)
    assert values == [pytest.approx(1 / 9), pytest.approx(1 / 12)]
    assert metric.aggregate(values, stats) == pytest.approx(2 / 21)
    _, values, _ = _score("invention_rate", ["The lungs are clear."], [REFS[0]])
    assert values == [0.0]  # a normal answer invents nothing (defined, not NaN)
    metric, values, stats = _score("negation_flip_rate", answers, REFS)
    assert values == [0.0, pytest.approx(1 / 3)]
    assert metric.aggregate(values, stats) == pytest.approx(1 / 7)  # 1 flip of 4 + 3 mentioned findings
    _, values, stats = _score("all_normal_rate", ["The lungs are clear.", "The lungs are clear."], REFS)
    assert values == [1.0, 1.0] and [s["ref_normal"] for s in stats] == [False, True]
    _, values, _ = _score("all_normal_excess", ["The lungs are clear.", "The lungs are clear."], REFS)
    assert values == [1.0, 0.0]
    _, _, stats = _score("omission_rate", answers, REFS)
    rates = label_rates(stats)
    assert rates["Pleural Effusion"] == {"answer": 1.0, "reference": 0.5}
    assert rates["Cardiomegaly"] == {"answer": 0.0, "reference": 0.5}


def test_finding_ratio_resampling_is_a_ratio_of_drawn_sums():
    rng = np.random.default_rng(0)
    pool = [*REFS, "Moderate cardiomegaly. No effusion.", "Large right pneumothorax. Left lower lobe consolidation."]
    refs = [pool[int(i)] for i in rng.integers(0, 4, 30)]
    answers = [pool[int(i)] for i in rng.integers(0, 4, 30)]
    for name in ("omission_rate", "invention_rate", "negation_flip_rate"):
        metric, values, stats = _score(name, answers, refs)
        counts = np.stack([np.bincount(rng.integers(0, 30, 30), minlength=30) for _ in range(20)]).astype(float)
        resampler = Resampler(metric, values, stats)
        assert resampler.vectorised
        sums = metric.from_sums(counts @ resampler.matrix)
        assert_close(sums, generic(metric, values, stats, counts))
        (boot,) = bootstrap_distribution([resampler], 200, 0)
        assert np.nanmin(boot) <= resampler.point() <= np.nanmax(boot)


def test_box_diagnostics_hand_computed():
    parsed = [
        Parsed(answer="", boxes=[[0.0, 0.0, 1.0, 1.0]]),
        Parsed(answer="", boxes=[[0.02, 0.02, 0.97, 0.98], [0.1, 0.1, 0.2, 0.2]]),  # IoU 0.912 with the image
        Parsed(answer="", boxes=[]),
        Parsed(answer="", boxes=[[0.0, 0.0, 0.8, 1.0]]),  # IoU 0.8: a large box, not the whole image
    ]
    samples = [Sample(f"s{i}", "t", [], reference_boxes=[[0.1, 0.1, 0.3, 0.3]] * (i % 2 + 1)) for i in range(4)]
    values = [s.value for s in get_metric("whole_image_box_rate").score(parsed, samples)]
    assert values == [1.0, 1.0, 0.0, 0.0]
    values = [s.value for s in get_metric("whole_image_box_rate", min_iou=0.75).score(parsed, samples)]
    assert values == [1.0, 1.0, 0.0, 1.0]
    assert [s.value for s in get_metric("no_box_rate").score(parsed, samples)] == [0.0, 0.0, 1.0, 0.0]
    assert [s.value for s in get_metric("box_count_excess").score(parsed, samples)] == [0.0, 0.0, -1.0, -1.0]


@pytest.mark.slow  # builds the tiny CheXbert and imports torch
def test_chexbert_variants_use_its_labels_and_say_when_unavailable(tmp_path, monkeypatch):
    from helpers.clinical import chexbert_files

    from evalkit.metrics.health_chexbert import chexbert_labels

    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path))
    assert "chexbert.pth" in get_metric("omission_rate_chexbert").available()
    # Head classes in CHEXPERT_LABELS order: 1 positive, 3 uncertain (positive), 2 negative, 0 blank.
    classes = [0] * 14
    classes[1], classes[9], classes[8], classes[13] = 1, 3, 2, 1  # cardiomegaly, uncertain effusion, no PTX, NF
    labels = chexbert_labels(classes)
    assert labels.positive == {"Cardiomegaly", "Pleural Effusion"} and labels.negative == {"Pneumothorax"}
    checkpoint, tokenizer = chexbert_files()
    options = {"checkpoint": str(checkpoint), "tokenizer": str(tokenizer), "device": "cpu"}
    answers, refs = ["Pleural effusion.", "No pneumothorax.", ""], [REFS[0], REFS[1], REFS[0]]
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]
    annotations = get_metric("chexbert_micro_f1_14", **options).client.annotate(refs + answers, None)
    for name in ("omission_rate_chexbert", "invention_rate_chexbert", "negation_flip_rate_chexbert"):
        metric = get_metric(name, **options)
        assert metric.available() is None
        scores = metric.score([Parsed(answer=a) for a in answers], samples)
        for i, score in enumerate(scores):  # the stored labels are CheXbert's, on the tiny random weights
            assert score.stats["ref_pos"] == sorted(chexbert_labels(annotations[i]["classes"]).positive)
            assert score.stats["answer_pos"] == sorted(chexbert_labels(annotations[3 + i]["classes"]).positive)
        hits, total = sum(s.stats["hits"] for s in scores), sum(s.stats["total"] for s in scores)
        value = metric.aggregate([], [s.stats for s in scores])
        assert value == pytest.approx(hits / total) if total else np.isnan(value)
