"""A `vllm serve` process started and stopped by the vLLM adapter, for data parallelism > 1.

vLLM's offline `LLM` class refuses `data_parallel_size > 1` in one process; its server implements data
parallelism itself (N engine replicas behind one internal load balancer, on one node or, with
`--data-parallel-backend ray`, on a Ray cluster). This module only builds the command line from the card,
starts it bound to 127.0.0.1, waits for `/health`, and stops the whole process group at the end.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from evalkit.config import ModelCard
from evalkit.errors import EvalkitError
from evalkit.model_adapters.chat import mm_processor_kwargs
from evalkit.model_adapters.vllm_card import check_engine_args, mm_limits

DEFAULT_STARTUP_TIMEOUT_S = 1800.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def vllm_executable() -> list[str]:
    found = shutil.which("vllm")
    return [found] if found else [sys.executable, "-m", "vllm.entrypoints.cli.main"]


def _flag(name: str, value: Any, *, negate_false: bool = False) -> list[str]:
    """`--name value`; True is `--name`, False `--no-name` (vLLM's boolean options) when `negate_false`."""
    option = "--" + name.replace("_", "-")
    if value is True:
        return [option]
    if value is False and negate_false:
        return ["--no-" + name.replace("_", "-")]
    if value is False or value is None:
        return []
    if isinstance(value, dict | list):
        return [option, json.dumps(value)]
    return [option, str(value)]


def serve_command(card: ModelCard, model: str, port: int, served_model_name: str) -> list[str]:
    """The `vllm serve` command line for a card: the same engine settings as the offline adapter uses."""
    serving = card.serving
    command = [*vllm_executable(), "serve", model, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--served-model-name", served_model_name]
    command += ["--tensor-parallel-size", str(serving.tensor_parallel_size)]
    command += ["--data-parallel-size", str(serving.data_parallel_size)]
    if serving.distributed_backend == "ray":
        command += ["--data-parallel-backend", "ray"]
    # Requests carry every sampling setting; "vllm" stops the checkpoint's generation_config from filling in the
    # rest (Qwen3-VL ships top_k=20), which the offline engine with explicit SamplingParams never applies either.
    command += ["--generation-config", "vllm", "--seed", str(int(card.decoding.seed))]
    command += _flag("limit_mm_per_prompt", mm_limits(card))
    command += _flag("mm_processor_kwargs", mm_processor_kwargs(card) or None)
    command += _flag("revision", card.revision)
    command += _flag("trust_remote_code", card.trust_remote_code)
    check_engine_args(card)
    for name, value in sorted(serving.engine_args.items()):
        command += _flag(name, value, negate_false=True)
    return command


class ManagedVLLMServer:
    """One `vllm serve` child process on 127.0.0.1.

    Args:
        card: The model card (model, parallelism, engine arguments).
        port: Port to bind; a free one by default.
        startup_timeout_s: How long to wait for `/health` (loading a 27B model across nodes takes minutes);
            default 30 min, or $EVALKIT_VLLM_STARTUP_TIMEOUT.
        log_path: Where the server's output goes; a temporary file by default, named in errors.
    """

    def __init__(
        self,
        card: ModelCard,
        *,
        port: int | None = None,
        startup_timeout_s: float | None = None,
        log_path: Path | None = None,
    ) -> None:
        from evalkit.model_adapters.vllm_card import resolve_checkpoint

        self.card = card
        self.model, _ = resolve_checkpoint(card)
        self.port = port or free_port()
        self.served_model_name = card.serving.served_model_name or card.name
        timeout = startup_timeout_s or float(os.environ.get("EVALKIT_VLLM_STARTUP_TIMEOUT", DEFAULT_STARTUP_TIMEOUT_S))
        self.startup_timeout_s = timeout
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="evalkit-vllm-serve-", suffix=".log")[1])
        self.command = serve_command(card, self.model, self.port, self.served_model_name)
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            try:
                # A new session, so that close() can stop the server and every worker it forked, and nothing else.
                self.process = subprocess.Popen(
                    self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                )
            except OSError as exc:
                raise EvalkitError(f"cannot start `{' '.join(self.command[:2])}`: {exc}. Is vLLM installed?") from exc
        atexit.register(self.close)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EvalkitError(
                    f"`vllm serve` exited with code {self.process.returncode} while starting; its log "
                    f"({self.log_path}) ends with:\n{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(1.0)
        self.close()
        raise EvalkitError(
            f"`vllm serve` was not ready after {self.startup_timeout_s:.0f} s (set EVALKIT_VLLM_STARTUP_TIMEOUT to "
            f"wait longer); log {self.log_path}:\n{self.log_tail()}"
        )

    def healthy(self) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{self.port}/health", timeout=2.0) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        except ProcessLookupError:
            pass
