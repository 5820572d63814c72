"""GREEN's `openai` back end reaches a loopback judge server with `http_proxy` set (issue 19, L8), as the OpenAI
adapter does: environment proxies are for the outside world."""

from __future__ import annotations

import pytest
from helpers.fakes import _Server

from evalkit.metrics import get_metric
from evalkit.metrics._annotations import clear_memory
from evalkit.sample import Parsed, Sample


def test_local_judge_server_is_reached_past_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    server = _Server()
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    try:
        metric = get_metric("green", backend="openai", base_url=server.url, served_model_name="green")
        assert metric.available() is None
        clear_memory()
        scores = metric.score([Parsed(answer="No effusion.")], [Sample("s0", "t", [], reference_text="Effusion.")])
        assert scores[0].value == 0.5 and len(server.requests) == 1
    finally:
        server.httpd.shutdown()
