"""The OpenAI-compatible adapter against a real HTTP server on 127.0.0.1 with scripted answers.

The server (http.server in a thread) records every request and plays a script: 429 with Retry-After, 5xx,
slow answers for timeouts, errors, or normal completions. Backoff delays go to a recorder instead of sleeping.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.model_adapters.base import Adapter, GenerationRequest
from evalkit.model_adapters.openai_server import (
    OpenAIAdapter,
    chat_completions_url,
    is_local_endpoint,
    message_text,
    retry_after_seconds,
)
from evalkit.sample import Sample

Action = Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]


def reply(content: str = "", finish: str = "stop", **message: Any) -> Action:
    def act(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        text = content or "answer: " + body["messages"][-1]["content"][-1]["text"]
        payload = {
            "choices": [{"message": {"role": "assistant", "content": text, **message}, "finish_reason": finish}],
            "usage": {"completion_tokens": 7, "prompt_tokens": 100},
        }
        _send(handler, 200, payload)

    return act


def status(code: int, headers: dict[str, str] | None = None, error: str = "busy") -> Action:
    def act(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        _send(handler, code, {"error": {"message": error}}, headers)

    return act


def slow(seconds: float) -> Action:
    def act(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        time.sleep(seconds)
        try:
            reply()(handler, body)
        except OSError:  # the client gave up already
            pass

    return act


def _send(handler: BaseHTTPRequestHandler, code: int, payload: dict, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


class ScriptedServer:
    def __init__(self) -> None:
        self.script: deque[Action] = deque()
        self.default: Action = reply()
        self.bodies: list[dict[str, Any]] = []
        self.models: list[str] | None = ["test-model"]
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if server.models is None:
                    _send(self, 404, {"error": "no listing"})
                else:
                    _send(self, 200, {"data": [{"id": m} for m in server.models]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    action = server.script.popleft() if server.script else server.default
                try:
                    time.sleep(server.delay)
                finally:
                    # Counted out before the reply is written: once the client has its answer it may send the
                    # next request, which must not overlap this handler's bookkeeping (a false 4th in flight).
                    with server.lock:
                        server.in_flight -= 1
                action(self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


def _card(**changes: Any) -> ModelCard:
    data: dict[str, Any] = {
        "name": "served",
        "adapter": "openai",
        "checkpoint": "test-model",
        "family": "qwen3-vl",
        "decoding": {"temperature": 0, "max_new_tokens": 32, "seed": 5},
        "system_prompt": "You are a radiologist.",
        "serving": {"max_request_retries": 3, "request_timeout_s": 5},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return ModelCard.model_validate(data)


def _task(access: str = "public") -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "name": f"{access}-task",
            "version": "1",
            "kind": "report_generation",
            "dataset": {"loader": "phantom"},
            "access": access,
            "prompt": {"template": "Describe."},
            "parser": "report",
            "metrics": ["rouge_l"],
            "primary_metric": "rouge_l",
        }
    )


def _request(index: int, prompt: str = "Describe.", size: tuple[int, int] = (200, 100)) -> GenerationRequest:
    sample = Sample(sample_id=f"s{index}", task="t", image_paths=[])
    return GenerationRequest(sample=sample, prompt=f"{prompt} #{index}", images=[Image.new("RGB", size, (index, 2, 3))])


def _adapter(server: ScriptedServer, card: ModelCard | None = None, **options: Any) -> tuple[OpenAIAdapter, list]:
    delays: list[float] = []
    adapter = OpenAIAdapter(card or _card(), endpoint=server.url, sleep=delays.append, **options)
    adapter.prepare(_task(), list)
    return adapter, delays


def test_request_body_messages_and_png_images(server: ScriptedServer) -> None:
    card = _card(image={"max_pixels": 64 * 64}, options={"resize_factor": 32}, serving={"extra_body": {"top_k": -1}})
    adapter, _ = _adapter(server, card)
    assert isinstance(adapter, Adapter)
    results = adapter.generate([_request(0), _request(1, "Locate.")])
    assert [r.text for r in results] == ["answer: Describe. #0", "answer: Locate. #1"]
    assert all(r.error is None and r.tokens == 7 and r.latency_s is not None for r in results)
    # Requests go out concurrently: find the first sample's body rather than relying on arrival order.
    body = next(b for b in server.bodies if b["messages"][1]["content"][1]["text"] == "Describe. #0")
    assert {k: body[k] for k in ("model", "max_tokens", "temperature", "top_p", "seed", "n", "top_k")} == {
        "model": "test-model",
        "max_tokens": 32,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 5,
        "n": 1,
        "top_k": -1,
    }
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You are a radiologist."}
    image_part, text_part = user["content"]
    assert text_part == {"type": "text", "text": "Describe. #0"}
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    # 200x100 under a 64*64 pixel cap with Qwen3-VL's factor 32: the size the server's processor would pick.
    assert image.size == (64, 32)


def test_retries_429_and_5xx_honouring_retry_after(server: ScriptedServer) -> None:
    server.script.extend([status(429, {"Retry-After": "3"}), status(500), status(503)])
    adapter, delays = _adapter(server)
    (result,) = adapter.generate([_request(0)])
    assert result.error is None and result.text == "answer: Describe. #0"
    assert len(server.bodies) == 4
    assert delays[0] == 3.0
    assert 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0, delays


def test_gives_up_after_the_retry_limit(server: ScriptedServer) -> None:
    server.default = status(502, error="bad gateway")
    adapter, delays = _adapter(server)
    results = adapter.generate([_request(0), _request(1)])
    assert all(r.text == "" and "gave up after 4 attempts" in r.error and "bad gateway" in r.error for r in results)
    assert len(server.bodies) == 8 and len(delays) == 6


def test_client_errors_are_not_retried(server: ScriptedServer) -> None:
    server.script.append(status(400, error="This model's maximum context length is 4096 tokens"))
    adapter, delays = _adapter(server)
    (result,) = adapter.generate([_request(0)])
    assert "HTTP 400" in result.error and "maximum context length" in result.error
    assert len(server.bodies) == 1 and delays == []


def test_timeouts_are_retried(server: ScriptedServer) -> None:
    server.script.append(slow(1.5))
    card = _card(serving={"request_timeout_s": 0.3})
    adapter, delays = _adapter(server, card)
    started = time.perf_counter()
    (result,) = adapter.generate([_request(0)])
    assert result.error is None and result.text == "answer: Describe. #0"
    assert len(delays) == 1 and time.perf_counter() - started < 1.5


def test_connection_errors_are_retried_then_reported() -> None:
    probe = ScriptedServer()
    url = probe.url
    probe.close()  # nothing listens on that port any more
    delays: list[float] = []
    adapter = OpenAIAdapter(_card(), endpoint=url, sleep=delays.append)
    (result,) = adapter.generate([_request(0)])
    assert "gave up after 4 attempts" in result.error and len(delays) == 3
    with pytest.raises(EvalkitError, match="cannot reach the model server"):
        adapter.prepare(_task(), list)


def test_concurrency_is_bounded(server: ScriptedServer) -> None:
    server.delay = 0.05
    adapter, _ = _adapter(server, _card(serving={"max_concurrency": 3}))
    results = adapter.generate([_request(i) for i in range(12)])
    assert [r.text for r in results] == [f"answer: Describe. #{i}" for i in range(12)]
    assert 2 <= server.max_in_flight <= 3


def test_thinking_retries_through_the_server(server: ScriptedServer) -> None:
    server.script.extend([reply("<think>cut off", finish="length"), reply("<think>done</think> Normal.")])
    card = _card(thinking="tags", decoding={"temperature": 0.7, "thinking_retries": 4})
    adapter, _ = _adapter(server, card)
    (result,) = adapter.generate([_request(0)])
    assert result.text == "<think>done</think> Normal."
    assert result.meta["attempts"] == 2 and result.meta["retry_reasons"] == ["length"]
    assert [b["seed"] for b in server.bodies] == [5, 6]


def test_reasoning_field_is_put_back_in_think_tags(server: ScriptedServer) -> None:
    server.script.append(reply("Normal study.", reasoning_content="Lungs look clear."))
    adapter, _ = _adapter(server, _card(thinking="tags"))
    (result,) = adapter.generate([_request(0)])
    assert result.text == "<think>Lungs look clear.</think>Normal study."
    assert message_text({"content": "a</think>b", "reasoning": "x"}) == "a</think>b"


def test_wrong_model_name_fails_at_prepare(server: ScriptedServer) -> None:
    server.models = ["Qwen/Qwen3-VL-8B-Instruct"]
    adapter = OpenAIAdapter(_card(), endpoint=server.url)
    with pytest.raises(EvalkitError, match=r"serves \['Qwen/Qwen3-VL-8B-Instruct'\], not 'test-model'"):
        adapter.prepare(_task(), list)
    server.models = None  # a server without a model listing is trusted
    OpenAIAdapter(_card(), endpoint=server.url).prepare(_task(), list)


# --- credentialed data stay on this machine -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://localhost:8000/v1", True),
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.8.9.10:8000", True),
        ("http://[::1]:8000/v1", True),
        ("https://api.openai.com/v1", False),
        ("http://10.0.0.5:8000/v1", False),
        ("http://0.0.0.0:8000/v1", False),
        ("http://gpu-node-3:8000/v1", False),
        ("http://127.0.0.1.nip.io:8000/v1", False),
    ],
)
def test_local_endpoints(url: str, local: bool) -> None:
    assert is_local_endpoint(url) is local


def test_credentialed_task_refused_for_remote_endpoint() -> None:
    adapter = OpenAIAdapter(_card(), endpoint="http://192.0.2.10:8000/v1")
    with pytest.raises(EvalkitError) as caught:
        adapter.prepare(_task("credentialed"), list)
    message = str(caught.value)
    assert "PhysioNet" in message and "Data Use Agreement" in message and "--allow-remote-credentialed" in message
    with pytest.raises(EvalkitError, match="call prepare"):
        adapter.generate([_request(0)])


def test_credentialed_task_allowed_locally_or_with_the_flag(server: ScriptedServer) -> None:
    OpenAIAdapter(_card(), endpoint=server.url).prepare(_task("credentialed"), list)
    remote = OpenAIAdapter(_card(), endpoint="http://192.0.2.10:8000/v1", allow_remote_credentialed=True)
    remote.check_access("credentialed", "mimic-report")  # no error; nothing is sent by the check
    OpenAIAdapter(_card(), endpoint="http://192.0.2.10:8000/v1").check_access("public", "phantom-report")


# --- small pieces --------------------------------------------------------------------------------------------------


def test_urls_and_retry_after() -> None:
    assert chat_completions_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1/chat/completions"
    assert chat_completions_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1/chat/completions"
    assert chat_completions_url("https://host/openai/v1") == "https://host/openai/v1/chat/completions"
    with pytest.raises(EvalkitError, match="not an http"):
        chat_completions_url("127.0.0.1:8000")
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None


def test_no_endpoint_is_a_usage_error() -> None:
    with pytest.raises(EvalkitError, match="--endpoint"):
        OpenAIAdapter(_card())


def test_fingerprint_ignores_the_endpoint_but_not_the_served_model() -> None:
    first = OpenAIAdapter(_card(), endpoint="http://127.0.0.1:8000/v1").fingerprint()
    assert OpenAIAdapter(_card(), endpoint="http://localhost:9000").fingerprint() == first
    assert OpenAIAdapter(_card(), endpoint="http://localhost:9000", served_model_name="x").fingerprint() != first
    extra = _card(serving={"extra_body": {"top_k": 20}})
    assert OpenAIAdapter(extra, endpoint="http://localhost:9000").fingerprint() != first
