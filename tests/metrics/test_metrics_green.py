"""GREEN: the parser and score on analyses in GREEN's format, both local back ends, and the local-only rule."""

from __future__ import annotations

import pytest
from helpers.fakes import ANALYSIS, _Server

from evalkit.metrics import get_metric
from evalkit.metrics._annotations import clear_memory
from evalkit.metrics.green import CHAT_TEMPLATE, clean_response, green_score, make_prompt, parse_counts, render_chat
from evalkit.sample import Parsed, Sample


def test_parser_and_score():
    total, counts = parse_counts(ANALYSIS, "Clinically Significant Errors")
    assert (total, counts) == (3, [0, 1, 0, 2, 0, 0])
    assert parse_counts(ANALYSIS, "Clinically Insignificant Errors")[0] == 3
    assert parse_counts(ANALYSIS, "Matched Findings")[0] == 3
    value, stats = green_score(ANALYSIS)
    assert value == pytest.approx(3 / (3 + 3))
    assert stats == {"matched_findings": 3, "significant_errors": [0, 1, 0, 2, 0, 0]}


@pytest.mark.parametrize(
    "analysis, expected",
    [
        ("[Matched Findings]:\n0. None", 0.0),  # nothing matched -> 0
        ("no format at all", 0.0),  # GREEN's return_0_if_no_green_score behaviour
        ("[Clinically Significant Errors]:\nNo errors.\n\n[Matched Findings]:\n2. A; B", 1.0),
        ("[Clinically Significant Errors]:\n(1) x: 1. y\n(3) z: 1. w\n\n[Matched Findings]:\n2. A; B", 0.5),
    ],
)
def test_edge_cases_follow_green(analysis, expected):
    assert green_score(analysis)[0] == pytest.approx(expected)


def test_prompt_and_chat_template():
    prompt = make_prompt("REF TEXT", "CAND TEXT")
    assert prompt.startswith("Objective: Evaluate the accuracy of a candidate radiology report")
    assert "2. Reference Report:\n    REF TEXT\n\n    3. Candidate Report:\n    CAND TEXT\n" in prompt
    assert clean_response("<|user|>\nq</s>\n<|assistant|>\nanswer</s>") == "\nanswer"
    # Rendered exactly as transformers' apply_chat_template renders GREEN's template.
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"</s>": 0, "[UNK]": 1}, "[UNK]")))
    tokenizer.eos_token = "</s>"
    tokenizer.chat_template = CHAT_TEMPLATE
    chat = [{"from": "human", "value": prompt}, {"from": "gpt", "value": ""}]
    assert render_chat("</s>", prompt) == tokenizer.apply_chat_template(
        chat, tokenize=False, add_generation_prompt=True
    )


def test_local_server_backend_and_cache(tmp_path):
    from evalkit.store import Store

    server = _Server()
    options = {"backend": "openai", "base_url": server.url, "served_model_name": "green"}
    metric = get_metric("green", **options)
    assert metric.available() is None
    refs, preds = ["Left effusion.", "Clear lungs."], ["No effusion.", "Clear lungs."]
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]
    clear_memory()
    with Store(tmp_path / "g.duckdb") as store:
        metric.cache = store
        scores = metric.score([Parsed(answer=p) for p in preds], samples)
        assert [s.value for s in scores] == [0.5, 0.5]
        assert scores[0].stats["significant_errors"] == [0, 1, 0, 2, 0, 0]
        assert len(server.requests) == 2
        # The two requests are in flight at once, so the server may see them in either order.
        assert all(r["temperature"] == 0.0 for r in server.requests)
        assert any("Left effusion." in r["prompt"] for r in server.requests)
        clear_memory()
        again = get_metric("green", **options)
        again.cache = store
        again.score([Parsed(answer=p) for p in preds], samples)
        assert len(server.requests) == 2  # the analyses came from the cache
    server.httpd.shutdown()


def test_never_a_third_party_api():
    reason = get_metric("green", backend="openai", base_url="https://api.example.com/v1").available()
    assert "not a local address" in reason
    assert "base_url" in get_metric("green", backend="openai").available()
    assert "not found locally" in get_metric("green", model_path="/no/such/dir").available()


def test_transformers_backend_on_a_tiny_llama(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", *sorted(set(make_prompt("a", "b").split()))]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, "<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.save_pretrained(tmp_path)
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    metric = get_metric("green", model_path=str(tmp_path), max_length=272, batch_size=2, device="cpu")
    assert metric.available() is None
    samples = [Sample("a", "t", [], reference_text="Left effusion."), Sample("b", "t", [], reference_text="")]
    scores = metric.score([Parsed(answer="No effusion."), Parsed(answer="")], samples)
    assert [s.value for s in scores] == [0.0, 0.0]  # a random judge writes no GREEN format: 0, as GREEN does
    assert all(isinstance(s.stats["analysis"], str) for s in scores)
