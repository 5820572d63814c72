"""Stand-ins for what a test cannot start: a GREEN completions server, vLLM's engine, a slow writer process."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
import threading
import types
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

ANALYSIS = """[Explanation]:
The candidate misses the effusion and calls the opacity severe.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 1. Left pleural effusion
(c) Misidentification of a finding's anatomic location/position: 0.
(d) Misassessment of the severity of a finding: 2. Opacity; Edema
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 3. Wording

[Matched Findings]:
3. Cardiomegaly; Opacity; No pneumothorax
"""


Responder = Callable[[str, dict[str, Any]], tuple[str, str]]


class _Server:
    """A local OpenAI-compatible /completions endpoint that answers with ANALYSIS and counts requests."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._reply({"data": [{"id": "green"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                self._reply({"choices": [{"text": ANALYSIS}]})

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


class FakeSamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        for key, value in kwargs.items():
            setattr(self, key, value)


class FakeLLM:
    """Records construction and calls; answers each conversation with `responder(prompt_text, sampling_kwargs)`."""

    instances: ClassVar[list[FakeLLM]] = []
    responder: Responder = staticmethod(lambda text, params: (f"echo: {text}", "stop"))

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[dict[str, Any]] = []
        FakeLLM.instances.append(self)

    def _answer(self, text: str, params: FakeSamplingParams) -> Any:
        output, finish = type(self).responder(text, params.kwargs)
        token_ids = list(range(len(output.split())))
        completion = types.SimpleNamespace(text=output, finish_reason=finish, token_ids=token_ids)
        return types.SimpleNamespace(outputs=[completion], prompt_token_ids=[1, 2, 3])

    def chat(self, messages: list, sampling_params: list, use_tqdm: bool = True, **options: Any) -> list:
        self.calls.append({"method": "chat", "messages": messages, "params": sampling_params, **options})
        texts = [conversation[-1]["content"][-1]["text"] for conversation in messages]
        return [self._answer(t, p) for t, p in zip(texts, sampling_params, strict=True)]

    def generate(self, prompts: list, sampling_params: list, use_tqdm: bool = True) -> list:
        self.calls.append({"method": "generate", "prompts": prompts, "params": sampling_params})
        return [self._answer(p["prompt"], s) for p, s in zip(prompts, sampling_params, strict=True)]


@pytest.fixture()
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> type[FakeLLM]:
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM  # type: ignore[attr-defined]
    module.SamplingParams = FakeSamplingParams  # type: ignore[attr-defined]
    module.__spec__ = types.SimpleNamespace(name="vllm")  # type: ignore[assignment]
    monkeypatch.setitem(sys.modules, "vllm", module)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: object() if name == "vllm" else real_find_spec(name, *a)
    )
    FakeLLM.instances = []
    FakeLLM.responder = staticmethod(lambda text, params: (f"echo: {text}", "stop"))
    return FakeLLM


TASK = "phantom-phrase-grounding"


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from evalkit.registry import resolve_model, resolve_tasks
    from evalkit.run.runner import Runner, load_samples
    from evalkit.model_adapters.registry import build_adapter
    from evalkit.results.store import Store

    db, root, model, delay = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    card, task = resolve_model(model), resolve_tasks(sys.argv[5])[0]
    pause = Path(sys.argv[6]) if len(sys.argv) > 6 else None
    adapter = build_adapter(card)
    adapter.prepare(task, lambda: load_samples(task, root, split="train"))
    generate = adapter.generate
    calls = [0]

    def slow(requests):
        # After the first batch, generation holds while the pause file exists (a long GPU batch).
        calls[0] += 1
        while pause is not None and calls[0] > 1 and pause.exists():
            time.sleep(0.05)
        time.sleep(delay)
        return generate(requests)

    adapter.generate = slow
    with Store(db) as store:
        Runner(store, task, card, adapter, data_root=root, batch_size=2, progress=False).run(
            on_progress=lambda n: print("batch", flush=True))
    print("done", flush=True)
    """
)
