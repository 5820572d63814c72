"""Model cards for the field's models, and `evalkit run` options that override a card for one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from evalkit import cli
from evalkit.config import ModelCard
from evalkit.errors import EvalkitError
from evalkit.model_adapters.base import card_fingerprint, card_with_overrides
from evalkit.registry import all_cards

FIELD_MODELS = {
    "radvlm": "vllm",
    "radvlm-grpo": "vllm",
    "radvlm-thinking-grpo": "vllm",
    "qwen3-vl-8b-instruct": "vllm",
    "qwen3-vl-8b-thinking": "vllm",
    "qwen3-vl-8b-grpo": "vllm",
    "maira-2": "external",
    "chexagent-2-3b": "external",
    "medgemma-4b-pt": "vllm",
    "medgemma-27b-it": "vllm",
    "llava-rad": "external",
    "deepmedix-r1": "vllm",
}
PUBLIC_HUB_IDS = {
    "qwen3-vl-8b-instruct": "Qwen/Qwen3-VL-8B-Instruct",
    "qwen3-vl-8b-thinking": "Qwen/Qwen3-VL-8B-Thinking",
    "maira-2": "microsoft/maira-2",
    "chexagent-2-3b": "StanfordAIMI/CheXagent-2-3b",
    "medgemma-4b-pt": "google/medgemma-4b-pt",
    "medgemma-27b-it": "google/medgemma-27b-it",
    "llava-rad": "microsoft/llava-rad",
    "deepmedix-r1": "Qika/DeepMedix-R1",
}


@pytest.fixture(scope="module")
def cards() -> dict[str, ModelCard]:
    return all_cards()


def test_every_field_model_has_a_card(cards: dict[str, ModelCard]) -> None:
    for name, adapter in FIELD_MODELS.items():
        card = cards[name]
        assert card.adapter == adapter, name
        assert card.source and card.description, name
        assert card.decoding.max_new_tokens > 0, name


def test_public_cards_name_real_hub_ids_and_private_ones_say_what_to_do(cards: dict[str, ModelCard]) -> None:
    for name in FIELD_MODELS:
        card = cards[name]
        if name in PUBLIC_HUB_IDS:
            assert card.public and card.checkpoint == PUBLIC_HUB_IDS[name], name
        else:
            assert not card.public, name
            assert card.checkpoint.startswith("./checkpoints/"), name
            assert "local" in card.description and "checkpoint" in card.description, name


def test_thinking_cards_retry_and_others_do_not(cards: dict[str, ModelCard]) -> None:
    thinking = {n for n in FIELD_MODELS if cards[n].thinking != "none"}
    assert thinking == {"radvlm-thinking-grpo", "qwen3-vl-8b-thinking", "deepmedix-r1"}
    for name in thinking:
        assert cards[name].decoding.thinking_retries == 64 and cards[name].decoding.max_new_tokens == 4096
    assert cards["qwen3-vl-8b-thinking"].thinking == "suffix"  # its chat template opens <think>
    assert cards["radvlm-thinking-grpo"].prompt_suffix == " /think"


def test_qwen_cards_use_the_papers_pixel_budget(cards: dict[str, ModelCard]) -> None:
    for name in ("radvlm", "radvlm-grpo", "qwen3-vl-8b-instruct", "qwen3-vl-8b-grpo"):
        card = cards[name]
        assert (card.image.min_pixels, card.image.max_pixels) == (1024, 451584), name
        assert card.options["resize_factor"] == 32 and card.options["image_text_separator"] == "\n", name
    assert cards["deepmedix-r1"].image.max_pixels == 262144 and cards["deepmedix-r1"].options["resize_factor"] == 28
    assert cards["qwen3-vl-8b-instruct"].box_format == "qwen1000" and cards["radvlm-grpo"].box_format == "unit01"


def test_overrides_are_validated_and_fingerprinted_as_documented(cards: dict[str, ModelCard]) -> None:
    card = cards["qwen3-vl-8b-instruct"]
    changed = card_with_overrides(
        card, adapter="openai", tensor_parallel_size=4, data_parallel_size=2, max_pixels=200_000, endpoint="http://h/v1"
    )
    assert changed.adapter == "openai" and changed.image.max_pixels == 200_000
    assert changed.serving.tensor_parallel_size == 4 and changed.serving.data_parallel_size == 2
    assert changed.serving.endpoint == "http://h/v1" and card.serving.endpoint is None, "the card itself is untouched"
    speed_only = card_with_overrides(card, tensor_parallel_size=8, data_parallel_size=4, endpoint="http://x:1")
    assert card_fingerprint(speed_only) == card_fingerprint(card)
    assert card_fingerprint(card_with_overrides(card, max_pixels=100_000)) != card_fingerprint(card)
    assert card_fingerprint(card_with_overrides(card, adapter="transformers")) != card_fingerprint(card)
    with pytest.raises(EvalkitError, match="below the card's min_pixels"):
        card_with_overrides(card, max_pixels=10)
    with pytest.raises(EvalkitError, match="--adapter must be one of"):
        card_with_overrides(card, adapter="baseline")
    with pytest.raises(EvalkitError, match="tensor_parallel_size"):
        card_with_overrides(card, tensor_parallel_size=0)


# --- the `run` command builds the overridden card ------------------------------------------------------------------


@pytest.fixture()
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `evaluate` hands the adapter class (from the registry) and the runner, with neither really run."""
    import evalkit.run.runner
    from evalkit.model_adapters.registry import AdapterEntry

    seen: dict[str, Any] = {}

    class FakeAdapter:
        def __init__(self, card: ModelCard, **options: Any) -> None:
            seen.update(card=card, options=options)

        def prepare(self, task, train_samples) -> None:
            seen.setdefault("tasks", []).append(task)

    class FakeRunner:
        def __init__(self, store, task, card, adapter, **kw: Any) -> None:
            self.task, self.card = task, card
            seen["batch_size"] = kw["batch_size"]

        def run(self) -> evalkit.run.runner.RunSummary:
            return evalkit.run.runner.RunSummary("run", self.task.name, self.card.name, 0)

    monkeypatch.setattr(AdapterEntry, "load", lambda self: FakeAdapter)
    monkeypatch.setattr(evalkit.run.runner, "Runner", FakeRunner)
    return seen


def _run(*args: object):
    return CliRunner().invoke(cli.app, ["run", *[str(a) for a in args]])


def test_run_options_override_the_card(captured: dict[str, Any], tmp_path: Path) -> None:
    result = _run(
        "--model", "qwen3-vl-8b-instruct", "--task", "phantom-report", "--db", tmp_path / "r.duckdb",
        "--adapter", "openai", "--endpoint", "http://127.0.0.1:8000/v1", "--tp", "2", "--dp", "3",
        "--max-pixels", "200000", "--allow-remote-credentialed",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = captured["card"]
    assert card.adapter == "openai" and card.serving.endpoint == "http://127.0.0.1:8000/v1"
    assert (card.serving.tensor_parallel_size, card.serving.data_parallel_size) == (2, 3)
    assert card.image.max_pixels == 200_000
    assert captured["batch_size"] == 64 and captured["options"] == {"allow_remote_credentialed": True}


def test_run_defaults_come_from_the_card(captured: dict[str, Any], tmp_path: Path) -> None:
    result = _run("--model", "medgemma-27b-it", "--task", "phantom-report", "--db", tmp_path / "r.duckdb")
    assert result.exit_code == 0, result.output
    card = captured["card"]
    assert card.adapter == "vllm" and card.serving.tensor_parallel_size == 2
    assert captured["batch_size"] == 256 and captured["options"] == {}
    local = tmp_path / "local.yaml"  # a transformers card (tiny-qwen3vl would build its model first)
    local.write_text(f"name: local\nadapter: transformers\ncheckpoint: {tmp_path}\n")
    _run("--model", local, "--task", "phantom-report", "--db", tmp_path / "r.duckdb", "--device", "cpu")
    assert captured["options"] == {"batch_size": 16, "device": "cpu"}


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("llava-rad", [], "evalkit score"),
        ("prior-box", ["--adapter", "vllm"], "weight-free baseline"),
        ("qwen3-vl-8b-instruct", ["--adapter", "sglang"], "--adapter must be one of"),
        ("qwen3-vl-8b-instruct", ["--max-pixels", "5"], "min_pixels"),
    ],
)
def test_run_refuses_what_cannot_run(
    captured: dict[str, Any], tmp_path: Path, model: str, extra: list[str], message: str
) -> None:
    result = _run("--model", model, "--task", "phantom-report", "--db", tmp_path / "r.duckdb", *extra)
    assert result.exit_code == 2
    assert message in result.output
    assert not captured


def test_shipped_checkpoints_keep_their_identity_from_before_the_move(cards: dict[str, ModelCard]) -> None:
    """evalkit 0.1 shipped its demo checkpoints in model_adapters/checkpoints/; they now live in
    evalkit/model_adapters/checkpoints/, and runs of them made before must still be found (no regeneration)."""
    card = cards["qwen3-vl-8b-instruct"]
    for sep in "/\\":
        now = card.model_copy(
            update={"checkpoint": sep.join(["", "x", "evalkit", "model_adapters", "checkpoints", "m"])}
        )
        before = card.model_copy(update={"checkpoint": sep.join(["", "x", "model_adapters", "checkpoints", "m"])})
        elsewhere = card.model_copy(update={"checkpoint": sep.join(["", "x", "evalkit", "checkpoints", "m"])})
        assert card_fingerprint(now) == card_fingerprint(before) != card_fingerprint(elsewhere)


def test_a_new_back_end_is_one_registry_line(monkeypatch) -> None:
    """Cards are checked against the adapter registry, so adding a back end never edits evalkit/config.py."""
    from evalkit.model_adapters import registry

    with pytest.raises(ValidationError, match="unknown adapter 'sglang'; known: baseline, transformers"):
        ModelCard(name="m", adapter="sglang", checkpoint="c")
    monkeypatch.setitem(registry.ADAPTERS, "sglang", registry.AdapterEntry("my_sglang:Adapter", 64))
    assert ModelCard(name="m", adapter="sglang", checkpoint="c").adapter == "sglang"
