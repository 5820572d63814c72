"""OpenAI-compatible chat server back end (`vllm serve`, SGLang, TGI, LM Studio, ...) over plain HTTP.

Requests go to `<endpoint>/chat/completions` with the images as base64 PNG data URLs, a bounded number in
flight (a thread pool), and retries with exponential backoff and jitter on 429, 5xx, timeouts and connection
errors (a `Retry-After` header is honoured). Only the standard library is used.

Credentialed data stay local: PhysioNet's data use agreement for MIMIC-CXR and the data sets built on it forbids
sending the data to third parties, so a task with `access: credentialed` is refused for any endpoint that is not
this machine (localhost, 127.0.0.0/8, ::1) unless the user passes `--allow-remote-credentialed`, which states
that the remote server is theirs and covered by the agreement. Host names other than `localhost` count as remote
even when they resolve to this machine: the check never trusts DNS.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.model_adapters.base import GenerationRequest, GenerationResult, card_fingerprint
from evalkit.model_adapters.chat import chat_messages, decoding_for, fit_to_card, png_data_url
from evalkit.model_adapters.thinking import Attempt, generate_with_retries, retry_seed
from evalkit.sample import Sample

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
RETRY_AFTER_CAP_S = 300.0
REMOTE_FLAG = "--allow-remote-credentialed"


class RequestFailed(Exception):
    """A chat request that failed for good (a 4xx other than 429, or retries used up)."""


ENCODE_WORKERS = 8
# vLLM's sampling fields that a server fills from generation_config when a request leaves them out.
VLLM_NEUTRAL_SAMPLING: dict[str, float | int] = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}


def is_local_endpoint(url: str) -> bool:
    """True for http(s) URLs whose host is localhost, 127.0.0.0/8 or ::1 (never resolved through DNS)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def chat_completions_url(endpoint: str) -> str:
    """`<base>/chat/completions`; a bare `http://host:port` gets the usual `/v1` prefix."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EvalkitError(f"endpoint '{endpoint}' is not an http(s) URL such as http://127.0.0.1:8000/v1")
    base = endpoint.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if parts.path in ("", "/"):
        base += "/v1"
    return base + "/chat/completions"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def message_text(message: dict[str, Any]) -> str:
    """The completion text; a reasoning parser's separate trace is put back in `<think>` tags, so the stored
    output and its parsing are the same whether or not the server split the thinking off."""
    content = message.get("content") or ""
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning and "</think>" not in content:
        return f"<think>{reasoning}</think>{content}"
    return content


class OpenAIAdapter:
    """Generates through an OpenAI-compatible `/v1/chat/completions` endpoint.

    Args:
        card: The model card; `serving` gives endpoint, concurrency, timeout, retries, extra request fields.
        endpoint: Base URL (overrides `serving.endpoint`), e.g. http://127.0.0.1:8000/v1.
        allow_remote_credentialed: Allow credentialed tasks on a non-local endpoint (`--allow-remote-credentialed`).
        client_resize: Resize images to the card's pixel limits before sending (see `chat.fit_to_card`).
        max_concurrency: Requests in flight at once (overrides `serving.max_concurrency`).
        served_model_name: The `model` field of requests (default `serving.served_model_name`, else checkpoint).
        api_key: Bearer token; default the environment variable named by `serving.api_key_env`, if set.
        sleep: Called with each backoff delay in seconds (tests pass a recorder).
    """

    needs_images = True

    def __init__(
        self,
        card: ModelCard,
        *,
        endpoint: str | None = None,
        allow_remote_credentialed: bool = False,
        client_resize: bool = True,
        max_concurrency: int | None = None,
        served_model_name: str | None = None,
        api_key: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        serving = card.serving
        endpoint = endpoint or serving.endpoint
        if not endpoint:
            raise EvalkitError(
                f"model '{card.name}': the openai adapter needs a server: pass --endpoint URL "
                "(e.g. http://127.0.0.1:8000/v1 for `vllm serve`) or set serving.endpoint in the card"
            )
        if card.options.get("raw_prompt"):
            raise EvalkitError(
                f"model '{card.name}' is prompted without a chat template (options.raw_prompt), which a chat "
                "completions server cannot do; use --adapter vllm or --adapter transformers"
            )
        self.card = card
        self.endpoint = endpoint
        self.url = chat_completions_url(endpoint)
        self.local = is_local_endpoint(endpoint)
        self.allow_remote_credentialed = allow_remote_credentialed
        self.client_resize = client_resize
        self.max_concurrency = max(1, int(max_concurrency or serving.max_concurrency))
        self.timeout_s = float(serving.request_timeout_s)
        self.max_retries = int(serving.max_request_retries)
        self.model_name = served_model_name or serving.served_model_name or card.checkpoint
        self.api_key = api_key if api_key is not None else os.environ.get(serving.api_key_env) or None
        self._sleep = sleep
        self._random = random.Random()
        self._access: str | None = None
        self._checked_server = False
        # "vllm" once the model listing says so (`owned_by: vllm`): such a server fills unset sampling fields from
        # the checkpoint's generation_config (Qwen3-VL: top_k 20) unless started with --generation-config vllm.
        self.server_kind: str | None = None
        # Environment proxies are for the outside world; a local server is reached directly.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({} if self.local else None))

    # --- protocol -----------------------------------------------------------------------------------------------
    def prepare(self, task: TaskSpec, train_samples: Callable[[], list[Sample]]) -> None:
        """Refuse credentialed data for a remote endpoint, then check once that the server answers and serves
        the model (so a wrong URL or model name fails now, not after every sample's retries)."""
        self.check_access(task.access, task.name)
        self._access = task.access
        if not self._checked_server:
            self.check_server()
            self._checked_server = True

    def check_server(self) -> None:
        """GET <base>/models: a connection failure or an unknown model name is an EvalkitError; a server that
        does not implement the listing (404, 401, ...) is given the benefit of the doubt."""
        url = self.url[: -len("/chat/completions")] + "/models"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            with self._opener.open(urllib.request.Request(url, headers=headers), timeout=10.0) as response:
                listing = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError:
            return
        except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EvalkitError(
                f"cannot reach the model server at {self.endpoint} ({reason}). Is it running? e.g. "
                f"`vllm serve {self.card.checkpoint} --host 127.0.0.1 --port 8000`"
            ) from None
        except ValueError:
            return
        models = [m for m in listing.get("data", []) if isinstance(m, dict)] if isinstance(listing, dict) else []
        names = [m.get("id") for m in models]
        if any(m.get("owned_by") == "vllm" for m in models):
            self.server_kind = "vllm"
        if names and self.model_name not in names:
            raise EvalkitError(
                f"the server at {self.endpoint} serves {names}, not '{self.model_name}'; set serving.served_model_name "
                "in the card (or start the server with --served-model-name)"
            )

    def check_access(self, access: str, task_name: str) -> None:
        if access != "credentialed" or self.local or self.allow_remote_credentialed:
            return
        raise EvalkitError(
            f"task '{task_name}' holds credentialed data (PhysioNet credentialed access, e.g. MIMIC-CXR) and "
            f"endpoint {self.endpoint} is not this machine. The PhysioNet Credentialed Health Data Use Agreement "
            "forbids sharing the data with third parties, including online services. Serve the model locally "
            f"(`vllm serve ... --host 127.0.0.1`) or, if the remote server is yours and covered by the agreement, "
            f"pass {REMOTE_FLAG}."
        )

    def fingerprint(self) -> str:
        # The endpoint is left out (the same model behind another port is the same model); the served model
        # name, extra request fields and whether images are resized here all change what the model sees.
        extra = {
            "adapter": "openai",
            "served_model": self.model_name,
            "extra_body": self.card.serving.extra_body,
            "client_resize": self.client_resize,
        }
        return card_fingerprint(self.card, extra=extra)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        if self._access is None and not self.local and not self.allow_remote_credentialed:
            raise EvalkitError(
                f"endpoint {self.endpoint} is not this machine: call prepare(task) first, so the adapter can check "
                "the task's access level"
            )
        decodings = [decoding_for(self.card, r) for r in requests]
        retries = max(int(d.get("thinking_retries") or 0) for d in decodings)
        # Images are resized and encoded once per request, not once per retry, several at a time (PIL releases
        # the GIL while it resizes and compresses).
        if len(requests) > 1:
            with ThreadPoolExecutor(max_workers=min(ENCODE_WORKERS, len(requests))) as pool:
                contents = list(pool.map(self._messages, requests))
        else:
            contents = [self._messages(r) for r in requests]

        def attempt(indices: Sequence[int], round_index: int) -> list[Attempt]:
            def one(i: int) -> Attempt:
                return self._complete(contents[i], decodings[i], round_index)

            if len(indices) == 1:
                return [one(indices[0])]
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(indices))) as pool:
                return list(pool.map(one, indices))

        outcomes = generate_with_retries(len(requests), attempt, thinking=self.card.thinking, retries=retries)
        return [
            GenerationResult(
                text=a.text if a.error is None else "",
                tokens=a.tokens,
                latency_s=a.meta.get("latency_s"),
                error=a.error,
                meta=meta,
            )
            for a, meta in outcomes
        ]

    # --- requests -----------------------------------------------------------------------------------------------
    def _image_part(self, image: Image.Image) -> dict[str, Any]:
        if self.client_resize:
            image = fit_to_card(image, self.card)
        return {"type": "image_url", "image_url": {"url": png_data_url(image)}}

    def _messages(self, request: GenerationRequest) -> list[dict[str, Any]] | Exception:
        try:
            return chat_messages(request, self.card, self._image_part)
        except Exception as exc:  # a bad image must fail its own sample only
            return exc

    def request_body(self, messages: list[dict[str, Any]], decoding: dict[str, Any], round_index: int) -> dict:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": messages,
            "max_tokens": int(decoding["max_new_tokens"]),
            "temperature": float(decoding.get("temperature") or 0.0),
            "top_p": float(decoding.get("top_p") or 1.0),
            "seed": retry_seed(decoding.get("seed"), round_index),
            "n": 1,
        }
        template_kwargs = self.card.options.get("chat_template_kwargs")
        if template_kwargs:
            body["chat_template_kwargs"] = dict(template_kwargs)
        if self.server_kind == "vllm":
            # Neutral values for what a vLLM server would otherwise take from the checkpoint's generation_config,
            # so a user-started server samples as the card says (as the managed one, started with
            # --generation-config vllm, and the offline engine do); the card's extra_body still wins.
            body.update(VLLM_NEUTRAL_SAMPLING)
        body.update(self.card.serving.extra_body)
        return body

    def _complete(self, messages: Any, decoding: dict[str, Any], round_index: int) -> Attempt:
        if isinstance(messages, Exception):
            return Attempt(text="", error=f"{type(messages).__name__}: {messages}")
        started = time.perf_counter()
        try:
            response = self.post(self.request_body(messages, decoding, round_index))
            choice = response["choices"][0]
            text = message_text(choice.get("message") or {})
            usage = response.get("usage") or {}
        except RequestFailed as exc:
            return Attempt(text="", error=str(exc))
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            return Attempt(text="", error=f"unexpected response from {self.url}: {type(exc).__name__}: {exc}")
        return Attempt(
            text=text,
            finish_reason=choice.get("finish_reason"),
            tokens=usage.get("completion_tokens"),
            meta={"latency_s": time.perf_counter() - started, "prompt_tokens": usage.get("prompt_tokens")},
        )

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST one chat request; retries 429, 5xx, timeouts and connection errors with backoff."""
        payload = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_error = "no attempt made"
        for attempt_index in range(self.max_retries + 1):
            wait: float | None = None
            try:
                request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code != 429 and exc.code < 500:
                    raise RequestFailed(f"HTTP {exc.code} from {self.url}: {detail}") from None
                last_error = f"HTTP {exc.code}: {detail}"
                wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
            except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last_error = f"{type(reason).__name__}: {reason}"
            except json.JSONDecodeError as exc:
                raise RequestFailed(f"response from {self.url} is not JSON: {exc}") from None
            if attempt_index < self.max_retries:
                self._sleep(self.backoff(attempt_index, wait))
        raise RequestFailed(f"{self.url}: gave up after {self.max_retries + 1} attempts; last error: {last_error}")

    def backoff(self, attempt_index: int, retry_after: float | None = None) -> float:
        """Seconds before retry `attempt_index + 1`: the server's Retry-After if it sent one (capped at 5 min),
        else exponential (1, 2, 4, ... s, capped at 60 s) with jitter in [50%, 100%] so that concurrent clients
        do not retry in lockstep."""
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_CAP_S)
        ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt_index)
        return ceiling * (0.5 + 0.5 * self._random.random())

    def __repr__(self) -> str:
        return f"OpenAIAdapter(card={self.card.name!r}, url={self.url!r}, concurrency={self.max_concurrency})"


def _error_detail(error: urllib.error.HTTPError) -> str:
    try:
        raw = error.read().decode("utf-8", errors="replace")
    except Exception:
        return error.reason or ""
    try:
        parsed = json.loads(raw)
        message = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:300]
    except ValueError:
        return raw[:300]
