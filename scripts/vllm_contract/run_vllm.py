"""vLLM's side of the contract check (run in the side environment that holds the pinned vLLM, no GPU needed).

Reads the `requests.json` that emit_requests.py wrote and runs vLLM's own code on it:
- `vllm.engine.arg_utils.EngineArgs(model=..., **engine_kwargs).create_model_config()`: the offline adapter's
  engine arguments and the checkpoint's config and processor files, as vLLM checks them;
- `vllm launch render <checkpoint> <evalkit's vllm serve flags>`: vLLM's GPU-free OpenAI-compatible server, started
  with exactly the flags evalkit starts `vllm serve` with; each of evalkit's chat-completions bodies is posted to
  `/v1/chat/completions/render` and the prompt token ids vLLM renders (image placeholders expanded) are kept.
Writes `fixtures.json` (the path given) with vLLM's version and outputs. Standard library only, plus vLLM.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engine_check(checkpoint: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    import dataclasses

    from vllm.engine.arg_utils import EngineArgs

    fields = {f.name for f in dataclasses.fields(EngineArgs)}
    unknown = sorted(set(kwargs) - fields)
    accepted = {k: v for k, v in kwargs.items() if k in fields}
    # Sleep mode needs CUDA (vLLM refuses it on this GPU-free platform): checked as a field name only.
    platform_only = sorted(k for k in ("enable_sleep_mode",) if accepted.pop(k, None) is not None)
    config = EngineArgs(model=checkpoint, **accepted).create_model_config()
    return {
        "unknown_engine_args": unknown,
        "checked_by_name_only": platform_only,
        "max_model_len": config.max_model_len,
        "multimodal": bool(config.is_multimodal_model),
        "limit_mm_per_prompt": dict(kwargs.get("limit_mm_per_prompt") or {}),
    }


def image_pad_id(checkpoint: str) -> int:
    data = json.loads((Path(checkpoint) / "tokenizer.json").read_text(encoding="utf-8"))
    # Qwen-VL's image placeholder, else Gemma3's.
    for token in ("<|image_pad|>", "<image_soft_token>"):
        found = [t["id"] for t in data["added_tokens"] if t["content"] == token]
        if found:
            return int(found[0])
    raise SystemExit("no image placeholder token in the checkpoint's tokenizer.json")


def render_all(
    checkpoint: str, flags: list[str], bodies: list[tuple[str, dict[str, Any]]], log: Path
) -> list[dict[str, Any]]:
    """Each (endpoint, body) posted to a `vllm launch render` started with `flags`."""
    port = free_port()
    # GPU-free: vLLM picks its CPU platform (the render server only preprocesses; nothing runs a model).
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="WARNING")
    command = [sys.executable, "-m", "vllm.entrypoints.cli.main", "launch", "render", checkpoint, *flags]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.time() + 300
        while True:
            if process.poll() is not None:
                raise SystemExit(f"vllm launch render exited ({process.returncode}); see {log}")
            try:
                with opener.open(base + "/health", timeout=2):
                    break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit(f"vllm launch render did not come up in 300 s; see {log}") from None
                time.sleep(2)
        out = []
        for endpoint, body in bodies:
            request = urllib.request.Request(
                base + endpoint,
                data=json.dumps({**body, "model": flags[flags.index("--served-model-name") + 1]}).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with opener.open(request, timeout=120) as response:
                    out.append({"status": response.status, "rendered": json.loads(response.read())})
            except urllib.error.HTTPError as error:
                out.append({"status": error.code, "error": error.read().decode("utf-8", "replace")[:2000]})
        return out
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def token_ids(rendered: dict[str, Any]) -> list[int]:
    """The prompt token ids in a render response (GenerateRequest: `token_ids`, else `prompt_token_ids`)."""
    for key in ("token_ids", "prompt_token_ids"):
        if isinstance(rendered.get(key), list):
            return [int(t) for t in rendered[key]]
    raise SystemExit(f"no token ids in the render response: {sorted(rendered)}")


def render_raw_prompts(checkpoint: str, items: list[dict[str, Any]], pad: int) -> list[dict[str, Any]]:
    """The offline engine's raw prompts (`LLM.generate` inputs) through vLLM's own renderer for the engine config
    evalkit's engine arguments give (`renderer_from_config(...).render_cmpl`, the path `LLM.generate` takes)."""
    import base64
    import io

    from PIL import Image
    from vllm.engine.arg_utils import EngineArgs
    from vllm.renderers.registry import renderer_from_config

    out = []
    for item in items:
        kwargs = {k: v for k, v in item["engine_kwargs"].items() if k != "enable_sleep_mode"}  # CUDA only
        renderer = renderer_from_config(EngineArgs(model=checkpoint, **kwargs).create_engine_config())
        url = item["input"]["multi_modal_data"]["image"]
        picture = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        (rendered,) = renderer.render_cmpl(
            [{"prompt": item["input"]["prompt"], "multi_modal_data": {"image": picture}}]
        )
        ids = [int(t) for t in rendered["prompt_token_ids"]]
        out.append(
            {
                "name": item["name"],
                "card": item["card"],
                "image_size": item["image_size"],
                "prompt_token_ids": ids,
                "image_tokens": sum(1 for t in ids if t == pad),
            }
        )
    return out


def main() -> None:
    work, target = Path(sys.argv[1]), Path(sys.argv[2])
    os.environ["VLLM_TARGET_DEVICE"] = "cpu"  # GPU-free, as the render server: vLLM's CPU platform
    import vllm

    payload = json.loads((work / "requests.json").read_text(encoding="utf-8"))
    checkpoint = payload["checkpoint"]
    engine = engine_check(checkpoint, payload["engine_kwargs"])
    pad = image_pad_id(checkpoint)
    bodies = [("/v1/chat/completions/render", c["body"]) for c in payload["cases"]]
    bodies += [("/v1/completions/render", c["body"]) for c in payload["completions"]]
    rendered = render_all(checkpoint, payload["serve_flags"], bodies, work / "render.log")
    completions = []
    for case, result in zip(payload["completions"], rendered[len(payload["cases"]) :], strict=True):
        if result["status"] != 200:
            raise SystemExit(f"{case['name']}: vLLM refused evalkit's completions request: {result}")
        got = result["rendered"]
        ids = token_ids(got[0] if isinstance(got, list) else got)
        completions.append({"name": case["name"], "prompt_token_ids": ids})
    cases = []
    for case, result in zip(payload["cases"], rendered[: len(payload["cases"])], strict=True):
        if result["status"] != 200:
            raise SystemExit(f"case {case['name']}: vLLM refused evalkit's request ({result['status']}): {result}")
        ids = token_ids(result["rendered"])
        cases.append(
            {
                "name": case["name"],
                "image_size": case["image_size"],
                "prompt_token_ids": ids,
                "image_tokens": sum(1 for t in ids if t == pad),
            }
        )
    fixtures = {
        "vllm": vllm.__version__,
        "produced_by": "scripts/vllm_contract_check.sh (run_vllm.py: EngineArgs.create_model_config, vllm launch "
        "render /v1/chat/completions/render)",
        "serve_flags": payload["serve_flags"],
        "engine": engine,
        "cases": cases,
        "completions": completions,
    }
    if payload.get("raw_prompts"):
        fixtures["raw_prompts"] = render_raw_prompts(checkpoint, payload["raw_prompts"], pad)
    target.write_text(json.dumps(fixtures, indent=1) + "\n", encoding="utf-8")
    print(f"run_vllm: vLLM {vllm.__version__}: {[(c['name'], c['image_tokens']) for c in cases]} -> {target}")


if __name__ == "__main__":
    main()
