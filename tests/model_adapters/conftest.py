"""The fake vLLM engine (tests/helpers/fakes.py) as a fixture of every adapter test."""

from helpers.fakes import fake_vllm  # noqa: F401 - the fixture
