"""The vLLM adapter against a scripted stand-in for the `vllm` package (no GPU, no vLLM needed).

The stand-in implements the subset of vLLM's offline API the adapter uses: `LLM(**engine_args)`, `LLM.chat`,
`LLM.generate` (returning RequestOutput-shaped objects) and `SamplingParams(**kwargs)`. It is installed as the
`vllm` module, so the adapter's real import path, engine arguments and request building are what is tested.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import stat
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers.fakes import FakeLLM
from PIL import Image

from evalkit.answers import parse_output
from evalkit.config import ModelCard
from evalkit.errors import EvalkitError
from evalkit.model_adapters.base import Adapter, GenerationRequest, card_with_overrides
from evalkit.model_adapters.thinking import answer_text
from evalkit.model_adapters.vllm_engine import VLLMAdapter, engine_kwargs
from evalkit.sample import Sample


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    folder = tmp_path / "radvlm-local"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


def _card(checkpoint: Path | str, **changes: Any) -> ModelCard:
    data: dict[str, Any] = {
        "name": "radvlm-test",
        "adapter": "vllm",
        "checkpoint": str(checkpoint),
        "family": "qwen3-vl",
        "box_format": "unit01",
        "decoding": {"temperature": 0, "max_new_tokens": 64, "seed": 11},
        "image": {"min_pixels": 1024, "max_pixels": 451584},
        "system_prompt": "You are a radiologist.",
        "options": {"resize_factor": 32, "image_text_separator": "\n"},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return ModelCard.model_validate(data)


def _request(index: int, prompt: str, **decoding: Any) -> GenerationRequest:
    sample = Sample(sample_id=f"s{index}", task="t", image_paths=[f"s{index}.png"])
    image = Image.new("RGB", (64 + index, 48), (index * 20 % 256, 80, 160))
    return GenerationRequest(sample=sample, prompt=prompt, images=[image], decoding=dict(decoding))


def test_engine_is_built_lazily_from_the_card(fake_vllm: type[FakeLLM], checkpoint: Path) -> None:
    card = _card(
        checkpoint,
        serving={
            "tensor_parallel_size": 4,
            "distributed_backend": "ray",
            "engine_args": {"max_model_len": 36864, "gpu_memory_utilization": 0.7},
        },
    )
    adapter = VLLMAdapter(card)
    assert isinstance(adapter, Adapter)
    adapter.fingerprint()
    assert fake_vllm.instances == [], "fingerprint() must not start vLLM (a fully cached run needs no GPU)"
    adapter.generate([_request(0, "Describe.")])
    (engine,) = fake_vllm.instances
    assert engine.kwargs == {
        "model": str(checkpoint.resolve()),
        "revision": None,
        "trust_remote_code": False,
        "tensor_parallel_size": 4,
        "seed": 11,
        "limit_mm_per_prompt": {"image": 1, "video": 0},
        "mm_processor_kwargs": {"size": {"shortest_edge": 1024, "longest_edge": 451584}},
        "distributed_executor_backend": "ray",
        "enable_sleep_mode": True,
        "max_model_len": 36864,
        "gpu_memory_utilization": 0.7,
    }


def test_whole_batch_goes_in_one_chat_call_with_per_request_sampling(
    fake_vllm: type[FakeLLM], checkpoint: Path
) -> None:
    adapter = VLLMAdapter(_card(checkpoint))
    requests = [_request(0, "Describe."), _request(1, "Locate the effusion.", max_new_tokens=8), _request(2, "Hi")]
    results = adapter.generate(requests)
    assert [r.text for r in results] == ["echo: \nDescribe.", "echo: \nLocate the effusion.", "echo: \nHi"]
    assert all(r.error is None and r.tokens and r.latency_s is not None for r in results)
    (engine,) = fake_vllm.instances
    (call,) = engine.calls
    assert call["method"] == "chat" and len(call["messages"]) == 3 and "chat_template_kwargs" not in call
    system, user = call["messages"][0]
    assert system == {"role": "system", "content": "You are a radiologist."}
    image_part, text_part = user["content"]
    assert image_part["type"] == "image_pil" and image_part["image_pil"] is requests[0].images[0]
    assert text_part == {"type": "text", "text": "\nDescribe."}
    kwargs = [p.kwargs for p in call["params"]]
    assert kwargs[0] == {"n": 1, "temperature": 0.0, "top_p": 1.0, "top_k": -1, "max_tokens": 64, "seed": 11}
    assert kwargs[1]["max_tokens"] == 8
    assert results[0].meta["prompt_tokens"] == 3 and results[0].meta["attempts"] == 1


def test_images_as_png_data_urls(fake_vllm: type[FakeLLM], checkpoint: Path) -> None:
    adapter = VLLMAdapter(_card(checkpoint), image_transport="data_url")
    request = _request(3, "Describe.")
    adapter.generate([request])
    part = fake_vllm.instances[0].calls[0]["messages"][0][1]["content"][0]
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.size == request.images[0].size
    assert decoded.convert("RGB").tobytes() == request.images[0].tobytes()


def test_thinking_retries_only_the_incomplete_requests_with_new_seeds(
    fake_vllm: type[FakeLLM], checkpoint: Path
) -> None:
    script = {
        "\nA": ["<think>clear</think>[0.10, 0.20, 0.50, 0.60]"],
        "\nB": ["<think>long", "<think>still no end", "<think>ok</think>[0.2, 0.2, 0.4, 0.4]"],
        "\nC": ["<think>never", "<think>never", "<think>never", "<think>never"],
    }
    seen: dict[str, int] = {}

    def responder(text: str, params: dict[str, Any]) -> tuple[str, str]:
        index = seen.get(text, 0)
        seen[text] = index + 1
        answer = script[text][index]
        return answer, "length" if answer == "<think>long" else "stop"

    fake_vllm.responder = staticmethod(responder)
    card = _card(checkpoint, thinking="tags", decoding={"thinking_retries": 3})
    adapter = VLLMAdapter(card)
    results = adapter.generate([_request(0, "A"), _request(1, "B"), _request(2, "C")])

    calls = fake_vllm.instances[0].calls
    assert [len(c["messages"]) for c in calls] == [3, 2, 2, 1]
    assert [[p.kwargs["seed"] for p in c["params"]] for c in calls] == [[11, 11, 11], [12, 12], [13, 13], [14]]
    a, b, c = results
    assert a.meta["attempts"] == 1 and a.meta["complete"]
    assert b.meta["attempts"] == 3 and b.meta["retry_reasons"] == ["length", "no </think>"] and b.meta["complete"]
    assert c.meta["attempts"] == 4 and not c.meta["complete"]
    # The stored text keeps the trace; the answer is what follows </think>.
    assert answer_text(b.text, "tags") == "[0.2, 0.2, 0.4, 0.4]"
    assert parse_output(a.text, "boxes", "unit01", "tags").boxes == [[0.1, 0.2, 0.5, 0.6]]
    assert parse_output(c.text, "boxes", "unit01", "tags").parse_error.startswith("thinking not closed")


def test_no_retries_when_the_card_sets_none(fake_vllm: type[FakeLLM], checkpoint: Path) -> None:
    fake_vllm.responder = staticmethod(lambda text, params: ("<think>cut", "length"))
    results = VLLMAdapter(_card(checkpoint, thinking="tags")).generate([_request(0, "A")])
    assert len(fake_vllm.instances[0].calls) == 1
    assert results[0].meta == {"attempts": 1, "finish_reason": "length", "complete": False, "prompt_tokens": 3}


def test_one_bad_request_fails_alone(fake_vllm: type[FakeLLM], checkpoint: Path) -> None:
    def responder(text: str, params: dict[str, Any]) -> tuple[str, str]:
        if "BAD" in text:
            raise ValueError("prompt is longer than max_model_len")
        return "fine", "stop"

    fake_vllm.responder = staticmethod(responder)
    results = VLLMAdapter(_card(checkpoint)).generate([_request(0, "ok"), _request(1, "BAD"), _request(2, "ok")])
    assert [r.text for r in results] == ["fine", "", "fine"]
    assert results[1].error and "max_model_len" in results[1].error
    assert results[0].error is None and results[2].error is None


def test_raw_prompt_models_use_generate(fake_vllm: type[FakeLLM], checkpoint: Path) -> None:
    card = _card(checkpoint, options={"raw_prompt": "<start_of_image> findings:"}, system_prompt=None)
    request = _request(0, "task prompt, not used")
    VLLMAdapter(card).generate([request])
    (call,) = fake_vllm.instances[0].calls
    assert call["method"] == "generate"
    expected = {"prompt": "<start_of_image> findings:", "multi_modal_data": {"image": request.images[0]}}
    assert call["prompts"] == [expected]


def test_chat_template_kwargs_are_passed(fake_vllm: type[FakeLLM], checkpoint: Path) -> None:
    card = _card(checkpoint, options={"chat_template_kwargs": {"enable_thinking": False}})
    VLLMAdapter(card).generate([_request(0, "A")])
    assert fake_vllm.instances[0].calls[0]["chat_template_kwargs"] == {"enable_thinking": False}


def test_fingerprint_covers_outputs_not_parallelism(fake_vllm: type[FakeLLM], checkpoint: Path) -> None:
    base = _card(checkpoint)
    reference = VLLMAdapter(base).fingerprint()
    same = [
        card_with_overrides(base, tensor_parallel_size=8, data_parallel_size=1),
        _card(checkpoint, serving={"distributed_backend": "ray", "engine_args": {"gpu_memory_utilization": 0.5}}),
        card_with_overrides(base, endpoint="http://127.0.0.1:9/v1"),
    ]
    for card in same:
        assert VLLMAdapter(card).fingerprint() == reference
    different = [
        card_with_overrides(base, max_pixels=200_000),
        _card(checkpoint, decoding={"max_new_tokens": 65}),
        _card(checkpoint, serving={"engine_args": {"dtype": "float16"}}),
        _card(checkpoint, system_prompt="Other."),
        _card(checkpoint, revision="abc123"),
    ]
    fingerprints = {VLLMAdapter(card).fingerprint() for card in different}
    assert reference not in fingerprints and len(fingerprints) == len(different)
    (checkpoint / "model.safetensors").write_bytes(b"\1" * 64)
    assert VLLMAdapter(base).fingerprint() != reference, "new weights at the same path must change the fingerprint"


def test_engine_kwargs_for_hub_models(fake_vllm: type[FakeLLM]) -> None:
    card = _card("Qwen/Qwen3-VL-8B-Instruct", revision="0123abcd", trust_remote_code=True, image={"max_pixels": None})
    kwargs = engine_kwargs(card)
    assert kwargs["model"] == "Qwen/Qwen3-VL-8B-Instruct" and kwargs["revision"] == "0123abcd"
    assert kwargs["trust_remote_code"] is True
    assert kwargs["mm_processor_kwargs"] == {"size": {"shortest_edge": 1024, "longest_edge": 16384 * 28 * 28}}
    assert "distributed_executor_backend" not in kwargs


def test_missing_vllm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, checkpoint: Path) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "vllm" else real_find_spec(name, *a)
    )
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    with pytest.raises(EvalkitError, match=r"vLLM is not installed.*--adapter openai"):
        VLLMAdapter(_card(checkpoint))


def test_private_card_says_where_the_weights_are(fake_vllm: type[FakeLLM]) -> None:
    from evalkit.registry import all_cards

    card = all_cards()["radvlm-grpo"]
    with pytest.raises(EvalkitError, match=r"not public.*PhysioNet.*local"):
        VLLMAdapter(card)


# --- data parallel: vLLM's own server, started and stopped by the adapter ------------------------------------------

FAKE_VLLM_SERVE = textwrap.dedent(
    """
    import json, os, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    argv = sys.argv[1:]
    with open(os.environ["FAKE_VLLM_ARGV"], "w") as handle:
        json.dump(argv, handle)
    port = int(argv[argv.index("--port") + 1])
    name = argv[argv.index("--served-model-name") + 1]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, payload):
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                self._send({})
            else:
                self._send({"data": [{"id": name}]})

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = request["messages"][-1]["content"][-1]["text"]
            message = {"role": "assistant", "content": "served: " + text.strip()}
            usage = {"completion_tokens": 2, "prompt_tokens": 5}
            self._send({"choices": [{"message": message, "finish_reason": "stop"}], "usage": usage})

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


def test_data_parallel_runs_vllm_serve_and_stops_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, checkpoint: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "fake_serve.py"
    script.write_text(FAKE_VLLM_SERVE)
    executable = bin_dir / "vllm"
    executable.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    executable.chmod(executable.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VLLM_ARGV", str(tmp_path / "argv.json"))

    card = _card(checkpoint, serving={"tensor_parallel_size": 2, "data_parallel_size": 4})
    adapter = VLLMAdapter(card)
    try:
        results = adapter.generate([_request(0, "A"), _request(1, "B")])
        server = adapter._server
        assert [r.text for r in results] == ["served: A", "served: B"]
        assert all(r.error is None for r in results)
    finally:
        adapter.close()
    assert server.process is None
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:2] == ["serve", str(checkpoint.resolve())]
    pairs = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert pairs["--host"] == "127.0.0.1"
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--data-parallel-size"] == "4"
    assert pairs["--generation-config"] == "vllm" and pairs["--seed"] == "11"
    assert json.loads(pairs["--mm-processor-kwargs"]) == {"size": {"shortest_edge": 1024, "longest_edge": 451584}}
    assert json.loads(pairs["--limit-mm-per-prompt"]) == {"image": 1, "video": 0}
