"""GREEN (Ostmeier et al., EMNLP Findings 2024), run locally: never through a third-party API.

The judge model (default StanfordAIMI/GREEN-radllama2-7b) reads GREEN's prompt (`make_prompt`: reference,
candidate, the six error categories and the output format) in GREEN's chat template and writes an analysis;
GREEN's parser counts the clinically significant errors (a)-(f) and the matched findings, and

    GREEN = matched / (matched + sum of significant errors), 0 when nothing is matched.

Two back ends, with the same prompt and parser but not always the same analysis text (the server decodes with
`max_tokens` rather than a total `max_length`, with its own end-of-sequence handling; under
`convention: green_score` the texts can differ), so `backend` is part of the score identity:
- `transformers` (default): weights from `model_path`, `$EVALKIT_METRIC_WEIGHTS/<name>` or the HF cache;
  left padding, pad = eos, greedy, at most `max_length` (2048) tokens in all, as green_score does.
- `openai`: an OpenAI-compatible server the user started (e.g. `vllm serve StanfordAIMI/GREEN-radllama2-7b`),
  called on `/completions` with the chat-templated prompt; only loopback or private addresses are accepted
  unless `allow_remote: true` (a server the user runs on their own cluster).

The analysis of each distinct (reference, prediction) pair is cached, so GREEN runs once per pair ever.

Option `convention` (the analysis text, hence the number, depends on it):
- `evalkit` (default): the prompt holds the reports as written; the analysis is what follows the last
  `<|assistant|>`; the matched-findings count may sit on any line of its section (MULTILINE).
- `green_score` (the radvlm-grpo profile's): Stanford-AIMI/GREEN's `green_score` package as RadVLM-GRPO's
  `eval_green.py` runs it (installed from the repository's HEAD by `repos_deps/green.sh`): `make_prompt` keeps the
  first 300 whitespace-separated words of each report, re-joined with single spaces; `clean_responses` also cuts
  at `[Explanation]:`; the matched-findings count must open its section (no MULTILINE: a count on a later line
  is 0); the judge's tokenizer adds BOS and EOS to every prompt (`add_eos_token=True`) and decodes with
  transformers 4's `clean_up_tokenization_spaces=True`. Transformers 5 ignores that clean-up for BPE tokenizers,
  so evalkit builds the ids and applies the clean-up itself (`llama_prompt_ids`, `clean_up_tokenization`).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import re
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from evalkit.errors import EvalkitError
from evalkit.metrics import register_metric
from evalkit.metrics._annotations import annotate, pair_hash, weights_fingerprint
from evalkit.metrics._weights import model_dir
from evalkit.metrics.base import Metric, MetricOptions, SampleScore, setting
from evalkit.sample import Parsed, Sample

CODE_VERSION = "1"
CONVENTIONS = ("evalkit", "green_score")
GREEN_SCORE_MAX_WORDS = 300  # green_score utils.make_prompt(text1, text2, max_len=300)
DEFAULT_MODEL = "StanfordAIMI/GREEN-radllama2-7b"
CATEGORIES = ("Clinically Significant Errors", "Clinically Insignificant Errors", "Matched Findings")
SUB_CATEGORIES = (
    "(a) False report of a finding in the candidate",
    "(b) Missing a finding present in the reference",
    "(c) Misidentification of a finding's anatomic location/position",
    "(d) Misassessment of the severity of a finding",
    "(e) Mentioning a comparison that isn't in the reference",
    "(f) Omitting a comparison detailing a change from a prior study",
)
CHAT_TEMPLATE = (
    "{% for message in messages %}\n"
    "{% if message['from'] == 'human' %}\n"
    "{{ '<|user|>\\n' + message['value'] + eos_token }}\n"
    "{% elif message['from'] == 'system' %}\n"
    "{{ '<|system|>\\n' + message['value'] + eos_token }}\n"
    "{% elif message['from'] == 'gpt' %}\n"
    "{{ '<|assistant|>\\n'  + message['value'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}"
)


def make_prompt(reference: str, candidate: str, max_words: int | None = None) -> str:
    """GREEN's prompt, verbatim (green_score `utils.make_prompt`); `max_words` keeps the first N words of each
    report re-joined with single spaces, as green_score's current `make_prompt` does (300)."""
    if max_words:
        reference = " ".join(reference.split()[:max_words])
        candidate = " ".join(candidate.split()[:max_words])
    return (
        "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology "
        "report composed by expert radiologists.\n\n    Process Overview: You will be presented with:\n\n"
        "    1. The criteria for making a judgment.\n    2. The reference radiology report.\n"
        "    3. The candidate radiology report.\n    4. The desired format for your assessment.\n\n"
        "    1. Criteria for Judgment:\n\n    For each candidate report, determine:\n\n"
        "    The count of clinically significant errors.\n    The count of clinically insignificant errors.\n\n"
        "    Errors can fall into one of these categories:\n\n"
        "    a) False report of a finding in the candidate.\n    b) Missing a finding present in the reference.\n"
        "    c) Misidentification of a finding's anatomic location/position.\n"
        "    d) Misassessment of the severity of a finding.\n"
        "    e) Mentioning a comparison that isn't in the reference.\n"
        "    f) Omitting a comparison detailing a change from a prior study.\n"
        "    Note: Concentrate on the clinical findings rather than the report's writing style. Evaluate only the "
        "findings that appear in both reports.\n\n"
        f"    2. Reference Report:\n    {reference}\n\n    3. Candidate Report:\n    {candidate}\n\n"
        "    4. Reporting Your Assessment:\n\n"
        "    Follow this specific format for your output, even if no errors are found:\n    ```\n"
        "    [Explanation]:\n    <Explanation>\n\n    [Clinically Significant Errors]:\n"
        "    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n"
        "    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n\n"
        "    [Clinically Insignificant Errors]:\n"
        "    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n"
        "    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n\n"
        "    [Matched Findings]:\n"
        "    <The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>\n    ```\n"
    )


def clean_response(text: str, convention: str = "evalkit") -> str:
    """One decoded judge output -> the analysis text (see the module docstring for the two conventions)."""
    if convention == "green_score":
        # green_score's clean_responses: its `("A" or "B") in response` tests only "A" (the template's own line).
        if "[Explanation]:" in text:
            if "<|assistant|>" in text:
                text = text.split("<|assistant|>")[-1]
            if "[Explanation]:\n    <Explanation>\n" in text:
                text = text.split("[Explanation]:")[1]
            else:
                text = text.split("[Explanation]:")[-1]
        if "<|assistant|>" in text:
            text = text.split("<|assistant|>")[-1]
        return text.replace("</s>", "").replace("<unk>", "")
    if "<|assistant|>" in text:
        text = text.split("<|assistant|>")[-1].replace("</s>", "").replace("<unk>", "")
    return text


def clean_up_tokenization(text: str) -> str:
    """transformers 4's `clean_up_tokenization` (what `clean_up_tokenization_spaces=True` applies on decode)."""
    for before, after in (
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ):
        text = text.replace(before, after)
    return text


def llama_prompt_ids(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], list[list[int]]]:
    """(input_ids, attention_mask) as transformers 4's LlamaTokenizerFast with `add_eos_token=True`,
    `padding_side="left"`, pad = eos, `padding=True, truncation=True, max_length` encodes `texts`.

    BOS + ids + EOS, the ids cut so that the whole fits `max_length`, left-padded to the longest. GREEN's chat
    template writes `</s>` inside the prompt text; transformers 4's (legacy) Llama-2 tokenizer normalises each piece
    between special tokens on its own, so the piece after `</s>` starts with "▁", while transformers 5's rebuilt
    Llama tokenizer prepends "▁" only once. Encoding each piece separately gives transformers 4's ids on both.
    """
    specials = sorted({t for t in tokenizer.all_special_tokens if t}, key=len, reverse=True)
    pattern = re.compile("(" + "|".join(re.escape(t) for t in specials) + ")") if specials else None
    rows = []
    for text in texts:
        ids: list[int] = []
        for piece in pattern.split(text) if pattern else [text]:
            if piece in specials:
                ids.append(tokenizer.convert_tokens_to_ids(piece))
            elif piece:
                ids.extend(tokenizer(piece, add_special_tokens=False)["input_ids"])
        rows.append([tokenizer.bos_token_id, *ids[: max(0, max_length - 2)], tokenizer.eos_token_id])
    width = max((len(r) for r in rows), default=0)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = [[pad] * (width - len(r)) + r for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    return input_ids, mask


def parse_counts(text: str, category: str, multiline: bool = True) -> tuple[int, list[int]]:
    """green_score's `parse_error_counts`: (sum, per sub-category counts) of one section of the analysis;
    `multiline=False` is the current green_score (the matched count must open the section)."""
    match = re.search(rf"\[{re.escape(category)}\]:\s*(.*?)(?:\n\s*\n|\Z)", text, re.DOTALL)
    counts = [0] * len(SUB_CATEGORIES)
    if not match or match.group(1).startswith("No"):
        return 0, counts
    body = match.group(1)
    if category == "Matched Findings":
        found = re.findall(r"^\b\d+\b(?=\.)", body, re.MULTILINE if multiline else 0)
        return (int(found[0]) if found else 0), counts
    prefixes = [s.split(" ", 1)[0] + " " for s in SUB_CATEGORIES]
    lines = sorted(re.findall(r"\([a-f]\) .*", body))
    if not lines:
        lines = sorted(re.findall(r"\([1-6]\) .*", body))
        prefixes = [f"({i}) " for i in range(1, len(SUB_CATEGORIES) + 1)]
    for index, prefix in enumerate(prefixes):
        for line in lines:
            if line.startswith(prefix):
                number = re.search(r"(?<=: )\b\d+\b(?=\.)", line)
                if number:
                    counts[index] = int(number.group(0))
    return sum(counts), counts


def green_score(analysis: str, convention: str = "evalkit") -> tuple[float, dict[str, Any]]:
    """GREEN of one analysis text and its counts."""
    multiline = convention != "green_score"
    _, significant = parse_counts(analysis, CATEGORIES[0], multiline)
    matched, _ = parse_counts(analysis, CATEGORIES[2], multiline)
    value = 0.0 if matched == 0 else matched / (matched + sum(significant))
    return value, {"matched_findings": matched, "significant_errors": significant}


def render_chat(tokenizer_eos: str, prompt: str) -> str:
    """GREEN's chat template on [human: prompt, gpt: ""] + generation prompt, rendered as transformers does."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(CHAT_TEMPLATE)
    messages = [{"from": "human", "value": prompt}, {"from": "gpt", "value": ""}]
    return template.render(messages=messages, eos_token=tokenizer_eos, add_generation_prompt=True)


def _opener(url: str) -> urllib.request.OpenerDirector:
    """Environment proxies (http_proxy) are for the outside world: a local judge server is reached directly."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({} if _is_local(url) else None))


def _is_local(url: str) -> bool:
    host = urllib.parse.urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(a.split("%")[0]).is_loopback or ipaddress.ip_address(a.split("%")[0]).is_private
        for a in addresses
    )


class _TransformersJudge:
    def __init__(
        self,
        folder,
        device: str | None,
        batch_size: int,
        max_length: int,
        trust_remote_code: bool,
        convention: str = "evalkit",
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=dtype, trust_remote_code=trust_remote_code
        ).to(self.device)
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(
            str(folder), add_eos_token=True, padding_side="left", trust_remote_code=trust_remote_code
        )
        self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.chat_template = CHAT_TEMPLATE
        self.batch_size, self.max_length, self.convention = batch_size, max_length, convention

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        if self.convention == "green_score":
            ids, mask = llama_prompt_ids(self.tokenizer, texts, self.max_length)
            return {"input_ids": self.torch.tensor(ids), "attention_mask": self.torch.tensor(mask)}
        return self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length)

    def _decode(self, generated: Any) -> list[str]:
        texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        if self.convention == "green_score":
            texts = [clean_up_tokenization(t) for t in texts]
        return [clean_response(t, self.convention) for t in texts]

    def __call__(self, prompts: list[str]) -> list[str]:
        torch = self.torch
        out = []
        for start in range(0, len(prompts), self.batch_size):
            chats = [
                [{"from": "human", "value": p}, {"from": "gpt", "value": ""}]
                for p in prompts[start : start + self.batch_size]
            ]
            texts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
            batch = {k: v.to(self.device) for k, v in self._encode(texts).items()}
            with torch.inference_mode():
                generated = self.model.generate(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    eos_token_id=self.tokenizer.eos_token_id,
                    pad_token_id=self.tokenizer.pad_token_id,
                    max_length=self.max_length,
                    do_sample=False,
                )
            out += self._decode(generated)
        return out


class _ServerJudge:
    def __init__(
        self,
        base_url: str,
        model: str,
        max_new_tokens: int,
        concurrency: int,
        timeout: float,
        convention: str = "evalkit",
    ):
        self.url = base_url.rstrip("/") + "/completions"
        self.model, self.max_new_tokens, self.concurrency, self.timeout = model, max_new_tokens, concurrency, timeout
        self.convention = convention

    def body(self, prompt: str) -> dict[str, Any]:
        """The `/completions` request for one GREEN prompt (held to vLLM's renderer by tests/test_vllm_contract)."""
        return {
            "model": self.model,
            "prompt": render_chat("</s>", prompt),
            "max_tokens": self.max_new_tokens,
            "temperature": 0.0,
        }

    def _one(self, prompt: str) -> str:
        body = self.body(prompt)
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with _opener(self.url).open(request, timeout=self.timeout) as response:
            return clean_response(json.loads(response.read())["choices"][0]["text"], self.convention)

    def __call__(self, prompts: list[str]) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, prompts))


_judges: dict[tuple[str, ...], Any] = {}
_lock = threading.Lock()


@register_metric
class Green(Metric):
    """GREEN per sample, mean over samples (local judge model or a local OpenAI-compatible server)."""

    name = "green"
    version = "1"
    requires = "GREEN judge weights locally (transformers) or a local OpenAI-compatible server serving them"
    description = "GREEN (StanfordAIMI/GREEN-radllama2-7b judge, run locally), mean over samples"

    class Options(MetricOptions):
        convention: Literal["evalkit", "green_score"] = "evalkit"
        backend: str = "transformers"
        model: str = DEFAULT_MODEL
        model_path: str | None = None
        base_url: str | None = None
        served_model_name: str | None = None
        allow_remote: bool = setting(False)
        max_length: int = 2048
        max_new_tokens: int = 1024
        trust_remote_code: bool = False
        batch_size: int = setting(8)
        max_concurrency: int = setting(8)
        request_timeout_s: float = setting(600.0)
        device: str | None = setting()

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.backend = options.get("backend", "transformers")
        self.model = options.get("model", DEFAULT_MODEL)
        self.model_path = options.get("model_path")
        self.base_url = options.get("base_url")
        self.served_model_name = options.get("served_model_name", self.model)
        self.allow_remote = bool(options.get("allow_remote", False))
        self.batch_size = int(options.get("batch_size", 8))
        self.max_length = int(options.get("max_length", 2048))
        self.max_new_tokens = int(options.get("max_new_tokens", 1024))
        self.concurrency = int(options.get("max_concurrency", 8))
        self.timeout = float(options.get("request_timeout_s", 600))
        self.device = options.get("device")
        self.trust_remote_code = bool(options.get("trust_remote_code", False))
        self.convention = options.get("convention", "evalkit")
        if self.convention not in CONVENTIONS:
            raise EvalkitError(f"metric 'green': convention must be one of {CONVENTIONS}, not '{self.convention}'")

    def available(self) -> str | None:
        if self.backend == "openai":
            if not self.base_url:
                return "backend 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1 of a server you started)"
            if not self.allow_remote and not _is_local(self.base_url):
                return (
                    f"{self.base_url} is not a local address; GREEN is never sent to a third-party API "
                    "(set allow_remote: true only for a server you run yourself)"
                )
            try:
                with _opener(self.base_url).open(self.base_url.rstrip("/") + "/models", timeout=3):
                    pass
            except (urllib.error.URLError, OSError) as exc:
                return f"no OpenAI-compatible server answers at {self.base_url} ({exc}); start one with vllm serve"
            return None
        if self.backend != "transformers":
            return f"unknown GREEN backend '{self.backend}'; use transformers or openai"
        if model_dir(self.model_path or self.model) is None:
            return (
                f"GREEN judge '{self.model_path or self.model}' not found locally; put it in "
                f"$EVALKIT_METRIC_WEIGHTS/{self.model.split('/')[-1]}/ or the Hugging Face cache "
                f"(huggingface-cli download {self.model}), pass model_path=PATH, or use backend: openai"
            )
        return None

    def _judge(self) -> tuple[Any, str]:
        version = self.fingerprint()
        if self.backend == "openai":
            key = ("openai", str(self.base_url), self.served_model_name, self.convention)
        else:
            folder = model_dir(self.model_path or self.model)
            key = (
                "transformers",
                str(folder),
                str(self.device),
                str(self.batch_size),
                str(self.max_length),
                self.convention,
            )
        with _lock:
            if key not in _judges:
                if self.backend == "openai":
                    _judges[key] = _ServerJudge(
                        str(self.base_url),
                        self.served_model_name,
                        self.max_new_tokens,
                        self.concurrency,
                        self.timeout,
                        self.convention,
                    )
                else:
                    with contextlib.redirect_stdout(io.StringIO()):
                        _judges[key] = _TransformersJudge(
                            folder,
                            self.device,
                            self.batch_size,
                            self.max_length,
                            self.trust_remote_code,
                            self.convention,
                        )
            return _judges[key], version

    def fingerprint(self) -> str:
        # The convention changes the prompt and the decoded analysis, so it keys the analysis cache too.
        tail = "" if self.convention == "evalkit" else f":{self.convention}"
        if self.backend == "openai":
            return f"{CODE_VERSION}:server:{self.served_model_name}:{self.max_new_tokens}{tail}"
        folder = model_dir(self.model_path or self.model)
        if folder is None:
            raise FileNotFoundError(self.available())
        return f"{CODE_VERSION}:hf:{weights_fingerprint(folder)}:{self.max_length}{tail}"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        refs = [s.reference_text or "" for s in samples]
        preds = [p.answer or "" for p in predictions]
        judge, version = self._judge()
        keys = [pair_hash(r, p) for r, p in zip(refs, preds, strict=True)]
        max_words = GREEN_SCORE_MAX_WORDS if self.convention == "green_score" else None
        inputs = {k: make_prompt(r, p, max_words) for k, r, p in zip(keys, refs, preds, strict=True)}

        def compute(prompts: list[str]) -> list[dict[str, str]]:
            return [{"analysis": a} for a in judge(prompts)]

        found = annotate(
            keys,
            inputs,
            compute,
            annotator=f"green:{self.model}",
            version=version,
            store=self.cache,
            batch_size=max(self.batch_size, 32),
        )
        out = []
        for key in keys:
            analysis = found[key]["analysis"]
            value, counts = green_score(analysis, self.convention)
            out.append(SampleScore(value, {**counts, "analysis": analysis}))
        return out
