"""Sibling lexical metrics share their work (one BLEU n-gram record per pair, one tokenisation and one Porter stem per
distinct text and token) and still give exactly the libraries' numbers: == against pycocoevalcap's Bleu and
rouge-score's RougeScorer called the plain way, on inputs chosen to hit the tokenisers' corners."""

from __future__ import annotations

import random

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from rouge_score import rouge_scorer, tokenize

import evalkit.metrics.lexical as lexical
from evalkit.metrics import get_metric
from evalkit.metrics.lexical import bleu_tokenize
from evalkit.sample import Parsed, Sample

WORDS = (
    "the heart size is normal no pleural effusion or pneumothorax small nodule right upper lobe left "
    "opacities consolidating atelectatic enlarged calcified findings unchanged"
).split()


def _corpus() -> tuple[list[str], list[str]]:
    """(references, predictions): empty texts, punctuation, unicode, case, numbers, repeats, very long reports."""
    rng = random.Random(13)
    long_reference = " ".join(rng.choices(WORDS, k=400)) + "."
    pairs = [
        ("No pleural effusion.", ""),
        ("", "Heart size is normal."),
        ("", ""),
        ("   ", "\n\t"),
        ("The heart is enlarged; lungs: clear!!", "the HEART is Enlarged , lungs clear ."),
        ("Nodule (2.5 cm) in the R.U.L.", "nodule 2.5cm in the r.u.l"),
        ("Épanchement pleural gauche, cœur normal.", "épanchement pleural gauche coeur normal"),
        ("肺野清晰，心影不大。 No effusion", "肺野清晰 no effusion"),
        ("ß straße İstanbul ﬁndings naïve", "SS STRASSE istanbul findings naive"),
        ("no\u00a0effusion\u2003seen 😀 ok", "no effusion seen ok 😀"),
        ("the the the the the the", "the the the"),
        ("effusion effusion effusion effusions", "effusion effusions effusion"),
        ("opacities opacity opacified opacification", "opacity opacities"),
        ("a b c d a b c d a b c d", "a b c d a b c d"),
        (long_reference, " ".join(rng.choices(WORDS, k=350))),
        (long_reference, long_reference),
    ]
    for _ in range(24):  # ordinary reports, some pairs repeated (as two models with the same output would)
        reference = " ".join(rng.choices(WORDS, k=rng.randint(3, 30))) + "."
        prediction = " ".join(rng.choices(WORDS, k=rng.randint(0, 30)))
        pairs.append((reference, prediction))
    pairs += pairs[-6:]
    return [r for r, _ in pairs], [p for _, p in pairs]


def _score(name: str, references: list[str], predictions: list[str], **options):
    metric = get_metric(name, **options)
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(references)]
    scores = metric.score([Parsed(answer=p) for p in predictions], samples)
    return metric, scores


@pytest.mark.parametrize("use_stemmer", [True, False])
@pytest.mark.parametrize("name, rouge_type", [("rouge_1", "rouge1"), ("rouge_2", "rouge2"), ("rouge_l", "rougeL")])
def test_rouge_with_shared_tokens_equals_rouge_score_exactly(name, rouge_type, use_stemmer):
    references, predictions = _corpus()
    lexical.clear_caches()
    for sibling in ("rouge_1", "rouge_2", "rouge_l"):  # the siblings fill the caches first, as in a run
        _score(sibling, references, predictions, use_stemmer=use_stemmer)
    metric, scores = _score(name, references, predictions, use_stemmer=use_stemmer)
    scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=use_stemmer)
    expected = [scorer.score(r, p)[rouge_type].fmeasure for r, p in zip(references, predictions, strict=True)]
    assert [s.value for s in scores] == expected
    assert metric.aggregate([s.value for s in scores], [s.stats for s in scores]) == sum(expected) / len(expected)


@pytest.mark.parametrize("use_stemmer", [True, False])
def test_memoised_tokens_equal_rouge_score_default_tokenizer(use_stemmer):
    from rouge_score.tokenizers import DefaultTokenizer

    references, predictions = _corpus()
    library = DefaultTokenizer(use_stemmer=use_stemmer)
    ours = lexical._CachedTokenizer(use_stemmer)
    for text in [*references, *predictions, *WORDS]:
        assert ours.tokenize(text) == tuple(library.tokenize(text))
        assert ours.tokenize(text) == tuple(library.tokenize(text))  # the cached answer too


def test_rouge_siblings_tokenise_each_text_and_stem_each_token_once(monkeypatch):
    references, predictions = _corpus()
    # What the library's own stemmer is asked, uncached: every token it would stem, with repeats.
    asked: list[str] = []

    class Recording:
        def stem(self, token: str) -> str:
            asked.append(token)
            return token

    for text in [*references, *predictions]:
        tokenize.tokenize(text, Recording())

    lexical.clear_caches()
    calls = {"tokenize": 0}
    stemmed: list[str] = []
    real_tokenize, real_porter = tokenize.tokenize, lexical._porter()

    def counting_tokenize(text, stemmer):
        calls["tokenize"] += 1
        return real_tokenize(text, stemmer)

    class CountingPorter:
        def stem(self, token: str) -> str:
            stemmed.append(token)
            return real_porter.stem(token)

    monkeypatch.setattr(tokenize, "tokenize", counting_tokenize)
    monkeypatch.setattr(lexical, "_porter", CountingPorter)
    for name in ("rouge_l", "rouge_1", "rouge_2"):
        _score(name, references, predictions)
    assert calls["tokenize"] == len(set(references) | set(predictions))
    assert len(stemmed) == len(set(stemmed))  # each distinct token stemmed once ...
    assert set(stemmed) == set(asked)  # ... and exactly the tokens the library stems
    assert len(asked) > 2 * len(stemmed)  # the corpus repeats tokens, so memoising saves work


@pytest.mark.parametrize("tokenization", ["raw", "lower_punct"])
def test_one_pass_bleu_equals_pycocoevalcap_exactly(tokenization):
    references, predictions = _corpus()
    prepare = bleu_tokenize if tokenization == "lower_punct" else (lambda text: text)
    corpus, per_sample = Bleu(4).compute_score(
        {i: [prepare(r)] for i, r in enumerate(references)},
        {i: [prepare(p)] for i, p in enumerate(predictions)},
        verbose=0,
    )
    lexical.clear_caches()
    for n in (1, 2, 3, 4):
        metric, scores = _score(f"bleu_{n}", references, predictions, tokenization=tokenization)
        assert [s.value for s in scores] == per_sample[n - 1]
        assert metric.aggregate([s.value for s in scores], [s.stats for s in scores]) == corpus[n - 1]


def test_bleu_siblings_count_ngrams_once_per_distinct_pair(monkeypatch):
    references, predictions = _corpus()
    lexical.clear_caches()
    calls: list[tuple[str, str, int, str]] = []
    real = lexical._cook_bleu

    def counting(prediction, reference, n, tokenization):
        calls.append((prediction, reference, n, tokenization))
        return real(prediction, reference, n, tokenization)

    monkeypatch.setattr(lexical, "_cook_bleu", counting)
    results = {n: _score(f"bleu_{n}", references, predictions)[1] for n in (1, 2, 3, 4)}
    distinct = len(set(zip(predictions, references, strict=True)))
    assert distinct < len(references)  # the corpus repeats pairs
    assert len(calls) == distinct
    assert lexical._bleu_counts.cache_info().misses == distinct
    # The tokenization changes the statistics, so it is part of the key: lower_punct counts afresh.
    _score("bleu_4", references, predictions, tokenization="lower_punct")
    assert len(calls) == 2 * distinct
    # Every metric gets its own stats dict: a caller changing one cannot change a sibling's.
    results[1][0].stats["correct"][0] += 100
    assert results[4][0].stats["correct"][0] == results[2][0].stats["correct"][0]
    assert lexical.bleu_stats(predictions[0], references[0]) == results[4][0].stats
