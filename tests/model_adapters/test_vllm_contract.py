"""evalkit's requests held to what vLLM's own code made of them (scripts/vllm_contract_check.sh), without vLLM.

The fixtures were produced by the vLLM pinned in constraints.txt (its version is in the file): `vllm launch render`
started with evalkit's `vllm serve` flags rendered evalkit's chat-completions bodies to prompt token ids, and
EngineArgs checked the offline adapter's engine arguments against the tiny hub-layout Qwen3-VL.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from evalkit.resources import PROJECT_ROOT

FOLDER = PROJECT_ROOT / "scripts" / "vllm_contract"
FIXTURES = json.loads((FOLDER / "fixtures.json").read_text(encoding="utf-8"))


def _emit() -> Any:
    spec = importlib.util.spec_from_file_location("emit_requests", FOLDER / "emit_requests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    from evalkit.testing.tiny_qwen3vl import build_tiny_qwen3vl

    checkpoint = build_tiny_qwen3vl(tmp_path_factory.mktemp("contract") / "tiny-qwen3vl", seed=0)
    return checkpoint, _emit().cases(checkpoint)


def test_fixtures_come_from_the_tested_vllm() -> None:
    from evalkit.cli.doctor import read_constraints

    assert FIXTURES["vllm"] == read_constraints()["vllm"]
    assert FIXTURES["engine"]["unknown_engine_args"] == []
    assert FIXTURES["engine"]["multimodal"] and FIXTURES["engine"]["limit_mm_per_prompt"] == {"image": 1, "video": 0}


def test_serve_flags_are_the_ones_vllm_accepted(built: tuple[Path, list[dict[str, Any]]]) -> None:
    from evalkit.model_adapters.vllm_server import serve_command

    checkpoint, _ = built
    command = serve_command(_emit().card(checkpoint), str(checkpoint), 0, "tiny")
    flags = command[command.index("serve") + 2 :]
    for option in ("--host", "--port"):
        at = flags.index(option)
        del flags[at : at + 2]
    assert flags == FIXTURES["serve_flags"]


def test_prompts_and_image_tokens_match_vllms_rendering(built: tuple[Path, list[dict[str, Any]]]) -> None:
    from evalkit.model_adapters.qwen3vl_processor import load_processor
    from evalkit.training.preflight import image_tokens

    checkpoint, cases = built
    processor = load_processor(checkpoint)
    budget = {"shortest_edge": 1024, "longest_edge": 451584}
    settings = {"patch_size": 16, "merge_size": 2}
    expected = {c["name"]: c for c in FIXTURES["cases"]}
    assert set(expected) == {c["name"] for c in cases}
    for case in cases:
        vllm_case = expected[case["name"]]
        messages = case["body"]["messages"]
        url = next(
            p["image_url"]["url"]
            for m in messages
            if isinstance(m["content"], list)
            for p in m["content"]
            if p.get("type") == "image_url"
        )
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = processor(text=[text], images=[image], images_kwargs={"size": budget})["input_ids"][0]
        assert list(map(int, ids)) == vllm_case["prompt_token_ids"], case["name"]
        # The training pre-flight's arithmetic on the original size gives vLLM's count.
        assert image_tokens(tuple(case["image_size"]), settings, budget) == vllm_case["image_tokens"], case["name"]


def test_green_completions_body_is_rendered_as_evalkit_tokenizes_it(built: tuple[Path, list[dict[str, Any]]]) -> None:
    from transformers import PreTrainedTokenizerFast

    checkpoint, _ = built
    body = _emit().green_body()
    assert set(body) == {"model", "prompt", "max_tokens", "temperature"} and body["temperature"] == 0.0
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(checkpoint / "tokenizer.json"))
    (green,) = FIXTURES["completions"]
    assert tokenizer(body["prompt"])["input_ids"] == green["prompt_token_ids"]


# --- every shipped card's request shape (scripts/vllm_contract/shapes.json, check_shapes.py) ---------------------
SHAPES = json.loads((FOLDER / "shapes.json").read_text(encoding="utf-8"))


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, FOLDER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shapes() -> dict[str, dict[str, Any]]:
    return {s["card"]: s for s in _load("emit_shapes").shapes()}


def test_shapes_cover_every_shipped_card_and_family(shapes: dict[str, dict[str, Any]]) -> None:
    frozen = {c["card"]: c for c in SHAPES["cards"]}
    assert SHAPES["vllm"] == FIXTURES["vllm"]
    assert set(frozen) == set(shapes)  # a new card needs the check rerun
    families = {c["family"] for c in frozen.values()}
    assert {"qwen3-vl", "qwen2.5-vl", "gemma3", "llava-v1", "maira-2", "chexagent"} <= families
    for name, card in frozen.items():
        assert card["family"] == shapes[name]["family"] and card["adapter"] == shapes[name]["adapter"], name
        assert ("no_vllm" in card) == (card["adapter"] != "vllm"), name


def test_offline_inputs_are_the_ones_vllm_accepted(shapes: dict[str, dict[str, Any]]) -> None:
    for card in SHAPES["cards"]:
        if "no_vllm" in card:
            continue
        ours = shapes[card["card"]]
        offline = card["offline"]
        assert ours["offline_input"] == offline["input"], card["card"]
        assert ours["sampling_kwargs"] == offline["sampling_kwargs"], card["card"]
        assert ours["engine_kwargs"] == card["engine_kwargs"] and card["unknown_engine_args"] == [], card["card"]
        # vLLM's SamplingParams kept what evalkit asked for: the card's decoding, top_k off (vLLM writes off as 0
        # when greedy, -1 otherwise).
        for key, value in ours["sampling_kwargs"].items():
            got = offline["sampling_params"][key]
            assert got in (-1, 0) if key == "top_k" else got == value, (card["card"], key, got)
        if offline["kind"] == "TextPrompt":
            assert offline["unknown_keys"] == [] and offline["image_size"] is not None
        else:
            kinds = [p["type"] for p in offline["parts"]]
            assert kinds.count("image_url") == 1 and "text" in kinds, card["card"]


def test_chat_bodies_are_the_ones_vllm_accepted(shapes: dict[str, dict[str, Any]]) -> None:
    served = 0
    for card in SHAPES["cards"]:
        if "no_vllm" in card:
            continue
        ours = shapes[card["card"]]
        if "chat_refused" in card:  # a raw-prompt card: evalkit refuses chat completions before any request
            assert ours["chat_refused"] == card["chat_refused"] and "raw_prompt" in card["chat_refused"]
            continue
        served += 1
        chat = card["chat"]
        assert ours["chat_body"] == chat["body"], card["card"]
        assert chat["unknown_fields"] == [], card["card"]
        sampling = chat["sampling_params"]
        body = ours["chat_body"]
        # What vLLM samples with, no server defaults: the card's decoding, no checkpoint top_k.
        assert (sampling["temperature"], sampling["top_p"], sampling["max_tokens"]) == (
            body["temperature"],
            body["top_p"],
            body["max_tokens"],
        ), card["card"]
        assert sampling["top_k"] in (-1, 0) and sampling["seed"] == body["seed"], card["card"]
        # The image vLLM decodes is the card-resized one, within the card's pixel budget when it has one.
        (image,) = [p for p in chat["parts"] if p["type"] == "image_url"]
        budget = ours["engine_kwargs"].get("mm_processor_kwargs", {}).get("size")
        if budget:
            width, height = image["image_size"]
            assert width * height <= budget["longest_edge"], card["card"]
    assert served >= 7


def test_green_completions_body_is_valid_for_vllm() -> None:
    green = SHAPES["green_completions"]
    ours = _load("emit_shapes").green_body()
    assert ours == green["body"] and green["unknown_fields"] == []
    assert (
        green["sampling_params"]["temperature"] == 0.0 and green["sampling_params"]["max_tokens"] == ours["max_tokens"]
    )


# --- Qwen2.5-VL (deepmedix-r1's card on the tiny hub-layout Qwen2.5-VL), rendered by `vllm launch render` ---------
QWEN25 = json.loads((FOLDER / "fixtures-qwen2.5-vl.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def built25(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    emit = _emit()
    checkpoint = emit.build("qwen2.5-vl", tmp_path_factory.mktemp("contract25"))
    return checkpoint, emit.cases(checkpoint, "qwen2.5-vl")


def test_qwen25vl_prompts_and_image_tokens_match_vllms_rendering(built25: tuple[Path, list[dict[str, Any]]]) -> None:
    """evalkit's own rendering (the checkpoint's chat template, Qwen2-VL image processor under the card's budget)
    and the pre-flight's arithmetic give vLLM's prompt token ids and image-token counts for deepmedix-r1's card."""
    from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

    from evalkit.model_adapters.chat import pixel_bounds
    from evalkit.training.preflight import image_tokens

    checkpoint, cases = built25
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    bounds = pixel_bounds(_emit().card(checkpoint, "qwen2.5-vl"))  # the deepmedix-r1 card's
    budget = {"shortest_edge": bounds["min_pixels"], "longest_edge": bounds["max_pixels"]}
    processor = Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2, size=budget)
    expected = {c["name"]: c for c in QWEN25["cases"]}
    assert set(expected) == {c["name"] for c in cases}
    for case in cases:
        vllm_case = expected[case["name"]]
        messages = case["body"]["messages"]
        image = _body_image(messages)
        grid = processor(images=[image], return_tensors="np")["image_grid_thw"][0]
        count = int(grid.prod()) // 4
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        text = text.replace("<|image_pad|>", "<|image_pad|>" * count)
        assert tokenizer(text)["input_ids"] == vllm_case["prompt_token_ids"], case["name"]
        settings = {"patch_size": 14, "merge_size": 2}
        assert image_tokens(tuple(case["image_size"]), settings, budget) == vllm_case["image_tokens"], case["name"]


# --- Gemma3 (medgemma-27b-it's card on the tiny hub-layout Gemma3), rendered by `vllm launch render` --------------
GEMMA3 = json.loads((FOLDER / "fixtures-gemma3.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def built_gemma3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    emit = _emit()
    checkpoint = emit.build("gemma3", tmp_path_factory.mktemp("contract_gemma3"))
    return checkpoint, emit.cases(checkpoint, "gemma3")


@pytest.mark.parametrize(
    ("family", "frozen", "built"), [("qwen2.5-vl", QWEN25, "built25"), ("gemma3", GEMMA3, "built_gemma3")]
)
def test_tiny_family_flags_and_engine_args_are_the_ones_vllm_accepted(
    family: str, frozen: dict[str, Any], built: str, request: pytest.FixtureRequest
) -> None:
    from evalkit.model_adapters.vllm_server import serve_command

    checkpoint, _ = request.getfixturevalue(built)
    assert frozen["vllm"] == FIXTURES["vllm"]
    assert frozen["engine"]["unknown_engine_args"] == [] and frozen["engine"]["multimodal"]
    command = serve_command(_emit().card(checkpoint, family), str(checkpoint), 0, "tiny")
    flags = command[command.index("serve") + 2 :]
    for option in ("--host", "--port"):
        at = flags.index(option)
        del flags[at : at + 2]
    assert flags == frozen["serve_flags"]


def _body_image(messages: list[dict[str, Any]]) -> Image.Image:
    """The (first) image of an OpenAI chat body, decoded from its data URL."""
    url = next(p["image_url"]["url"] for m in messages for p in m["content"] if p.get("type") == "image_url")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def test_gemma3_prompts_and_image_tokens_match_vllms_rendering(
    built_gemma3: tuple[Path, list[dict[str, Any]]],
) -> None:
    """transformers' Gemma3 processor on evalkit's chat body (medgemma-27b-it's card) gives vLLM's prompt token
    ids: the 256 image tokens per image, whatever the radiograph's size."""
    from transformers import AutoTokenizer, Gemma3ImageProcessorPil, Gemma3Processor

    checkpoint, cases = built_gemma3
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    image_processor = Gemma3ImageProcessorPil.from_pretrained(checkpoint)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_length=256)
    expected = {c["name"]: c for c in GEMMA3["cases"]}
    assert set(expected) == {c["name"] for c in cases}
    for case in cases:
        vllm_case = expected[case["name"]]
        messages = case["body"]["messages"]
        image = _body_image(messages)
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = processor(text=[text], images=[image], add_special_tokens=False)["input_ids"][0]
        assert list(map(int, ids)) == vllm_case["prompt_token_ids"], case["name"]
        assert vllm_case["image_tokens"] == 256, case["name"]


def test_medgemma_pt_raw_prompt_matches_vllms_offline_rendering(
    built_gemma3: tuple[Path, list[dict[str, Any]]],
) -> None:
    """medgemma-4b-pt's raw prompt (`LLM.generate`, no chat template) as evalkit builds it, rendered by transformers'
    Gemma3 processor, gives the prompt token ids vLLM's own renderer made of it (<bos>, 256 image tokens)."""
    from transformers import AutoTokenizer, Gemma3ImageProcessorPil, Gemma3Processor

    checkpoint, _ = built_gemma3
    items = _emit().raw_prompts(checkpoint, "gemma3")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil.from_pretrained(checkpoint), tokenizer=tokenizer, image_seq_length=256
    )
    expected = {r["name"]: r for r in GEMMA3["raw_prompts"]}
    assert set(expected) == {i["name"] for i in items} and {i["card"] for i in items} == {"medgemma-4b-pt"}
    for item in items:
        url = item["input"]["multi_modal_data"]["image"]
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        ids = processor(text=[item["input"]["prompt"]], images=[image])["input_ids"][0]
        assert list(map(int, ids)) == expected[item["name"]]["prompt_token_ids"], item["name"]
        assert expected[item["name"]]["image_tokens"] == 256 and ids[0] == tokenizer.bos_token_id
