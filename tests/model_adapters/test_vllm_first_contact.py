"""What evalkit hands vLLM, checked without vLLM (issue 19: L2, L9, L10, L11).

The engine-argument lists are vLLM 0.32.0/0.33.0's own `EngineArgs` fields, read from their wheels by
scripts/freeze_vllm_engine_args.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers.fakes import FakeLLM
from PIL import Image

from evalkit.config import ModelCard
from evalkit.errors import EvalkitError
from evalkit.model_adapters.base import GenerationRequest
from evalkit.model_adapters.openai_server import VLLM_NEUTRAL_SAMPLING, OpenAIAdapter
from evalkit.model_adapters.transformers_local import hub_snapshot_commit
from evalkit.model_adapters.vllm_engine import VLLMAdapter, engine_kwargs
from evalkit.model_adapters.vllm_engine_args import VLLM_0_32_FIELDS, VLLM_0_33_FIELDS, unknown_engine_args
from evalkit.model_adapters.vllm_server import serve_command
from evalkit.registry import all_cards, resolve_tasks
from evalkit.sample import Sample


def _card(checkpoint: Path, **serving: Any) -> ModelCard:
    return ModelCard.model_validate(
        {
            "name": "first-contact",
            "adapter": "vllm",
            "checkpoint": str(checkpoint),
            "family": "qwen3-vl",
            "box_format": "qwen1000",
            "decoding": {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 16},
            "image": {"min_pixels": 1024, "max_pixels": 451584},
            "options": {"resize_factor": 32},
            "serving": serving,
        }
    )


# --- L11: engine arguments, video limit, False flags ----------------------------------------------------------------


def test_engine_args_vllm_rejects_are_refused_before_start(tmp_path: Path) -> None:
    card = _card(tmp_path, engine_args={"swap_space": 4, "disable_mm_preprocessor_cache": True, "max_model_len": 8})
    with pytest.raises(EvalkitError, match=r"\['disable_mm_preprocessor_cache', 'swap_space'\] are not vLLM engine"):
        engine_kwargs(card)
    with pytest.raises(EvalkitError, match="swap_space"):
        serve_command(card, str(tmp_path), 8000, "m")


def test_shipped_cards_use_only_vllm_engine_args() -> None:
    for name, card in all_cards().items():
        assert unknown_engine_args(card.serving.engine_args)[0] == [], name
    assert {
        "max_model_len",
        "gpu_memory_utilization",
        "limit_mm_per_prompt",
        "mm_processor_cache_gb",
    } <= VLLM_0_32_FIELDS
    assert not {"swap_space", "disable_mm_preprocessor_cache"} & VLLM_0_33_FIELDS


def test_no_video_and_false_flags_as_no_options(tmp_path: Path) -> None:
    card = _card(tmp_path, engine_args={"enable_prefix_caching": False, "enforce_eager": True})
    assert engine_kwargs(card)["limit_mm_per_prompt"] == {"image": 1, "video": 0}
    command = serve_command(card, str(tmp_path), 8000, "m")
    limit = command[command.index("--limit-mm-per-prompt") + 1]
    assert json.loads(limit) == {"image": 1, "video": 0}
    assert "--no-enable-prefix-caching" in command and "--enforce-eager" in command


def test_freeze_script_reads_engine_args_fields(tmp_path: Path) -> None:
    import importlib.util

    from evalkit.resources import PROJECT_ROOT

    package = tmp_path / "vllm"
    (package / "engine").mkdir(parents=True)
    (package / "_version.py").write_text("__version__ = version = '9.9.9'\n")
    (package / "engine" / "arg_utils.py").write_text(
        "class Other:\n    x: int = 1\n\n"
        "class EngineArgs:\n    model: str = 'm'\n    seed: int = 0\n    def f(self): ...\n"
    )
    spec = importlib.util.spec_from_file_location("freeze", PROJECT_ROOT / "scripts" / "freeze_vllm_engine_args.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.engine_arg_fields(package / "engine" / "arg_utils.py") == ["model", "seed"]


# --- L2: the managed server gets images at the card's size --------------------------------------------------------


def test_managed_server_requests_carry_resized_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeServer:
        endpoint = "http://127.0.0.1:9/v1"
        served_model_name = "m"

        def __init__(self, card: ModelCard) -> None:
            pass

        def start(self) -> None:
            pass

    monkeypatch.setattr("evalkit.model_adapters.vllm_server.ManagedVLLMServer", FakeServer)
    adapter = VLLMAdapter(_card(tmp_path, data_parallel_size=2), engine=object())
    client = adapter._served()
    assert client.client_resize
    part = client._image_part(Image.new("RGB", (2500, 3000)))
    import base64
    import io

    image = Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])))
    assert image.size == (608, 736) and image.width * image.height <= 451584


# --- L10: a user-started vLLM server samples as the card says -----------------------------------------------------


@pytest.fixture()
def listing_server() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"owned_by": "vllm", "bodies": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"data": [{"id": "m", "object": "model", "owned_by": state["owned_by"]}]})

        def do_POST(self) -> None:
            state["bodies"].append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self._send({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}], "usage": {}})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield state
    httpd.shutdown()
    httpd.server_close()


def _ask(state: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    card = _card(tmp_path).model_copy(update={"adapter": "openai"})
    adapter = OpenAIAdapter(card, endpoint=state["url"], served_model_name="m")
    adapter.prepare(resolve_tasks("phantom-report")[0], list)
    sample = Sample(sample_id="s0", task="t", image_paths=["s0.png"])
    adapter.generate([GenerationRequest(sample=sample, prompt="Describe.", images=[Image.new("RGB", (64, 64))])])
    return state["bodies"][-1]


def test_user_started_vllm_server_gets_neutral_sampling_fields(listing_server: dict[str, Any], tmp_path) -> None:
    body = _ask(listing_server, tmp_path)
    assert {k: body[k] for k in VLLM_NEUTRAL_SAMPLING} == {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9
    listing_server["owned_by"] = "openai"  # another server: no vLLM-only fields
    assert "top_k" not in _ask(listing_server, tmp_path)


# --- L9: a hub checkpoint's fingerprint names its snapshot ---------------------------------------------------------


def test_hub_snapshot_commit_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--tiny"
    for commit in ("a" * 40, "b" * 40):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    assert hub_snapshot_commit("org/tiny") == "a" * 40
    (repo / "refs" / "main").write_text("b" * 40)  # the hub model was updated and re-downloaded
    assert hub_snapshot_commit("org/tiny") == "b" * 40
    assert hub_snapshot_commit("org/tiny", "c" * 40) is None
    assert hub_snapshot_commit("org/absent") is None


# --- L1: the engine hands the GPU to the metrics ------------------------------------------------------------------


@pytest.mark.usefixtures("fake_vllm")  # vllm.SamplingParams for the engine's requests
def test_engine_sleeps_before_scoring_and_wakes_for_the_next_task(data_root: Path, tmp_path: Path) -> None:
    from evalkit.run.evaluate import evaluate

    events: list[str] = []

    class SleepyLLM(FakeLLM):
        def chat(self, *args: Any, **kwargs: Any) -> list:
            events.append("chat")
            return super().chat(*args, **kwargs)

        def sleep(self, level: int = 1) -> None:
            events.append(f"sleep {level}")

        def wake_up(self) -> None:
            events.append("wake_up")

    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    card = _card(checkpoint).model_copy(
        update={"decoding": _card(checkpoint).decoding.model_copy(update={"temperature": 0})}
    )
    adapter = VLLMAdapter(card, engine=SleepyLLM())
    evaluate(card, "phantom-report", db=tmp_path / "r.duckdb", data_root=data_root, limit=2, adapter=adapter)
    assert events[-1] == "sleep 1" and "chat" in events
    events.clear()
    evaluate(card, "phantom-anatomy-grounding", db=tmp_path / "r.duckdb", data_root=data_root, limit=1, adapter=adapter)
    assert events[:2] == ["wake_up", "chat"] and events[-1] == "sleep 1"
    assert engine_kwargs(card)["enable_sleep_mode"] is True


@pytest.mark.usefixtures("fake_vllm")
def test_platform_without_sleep_mode_builds_the_engine_awake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class NoSleepLLM(FakeLLM):
        def __init__(self, **kwargs: Any) -> None:
            if kwargs.get("enable_sleep_mode"):
                raise ValueError("Sleep mode is not supported on current platform.")
            super().__init__(**kwargs)

    monkeypatch.setattr(__import__("sys").modules["vllm"], "LLM", NoSleepLLM)
    adapter = VLLMAdapter(_card(tmp_path))
    assert "enable_sleep_mode" not in adapter.engine.kwargs
