"""Task and model-card specs: pydantic models loaded from YAML with errors that name the file and field."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from evalkit.errors import EvalkitError

BoxFormat = Literal["unit01", "qwen1000", "pixels_resized", "pixels"]
BOX_FORMATS: tuple[str, ...] = ("unit01", "qwen1000", "pixels_resized", "pixels")


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a YAML file must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class DatasetSpec(Strict):
    """Which loader builds the samples and with which options."""

    loader: str
    split: str = "test"
    root: str | None = Field(
        default=None, description="Data folder; relative to --data-root. Defaults to the loader's own name."
    )
    options: dict[str, Any] = Field(default_factory=dict)


class PromptSpec(Strict):
    """A template, or a pool of templates from which each sample draws one with a fixed seed."""

    template: str | None = None
    pool: list[str] | None = None
    seed: int = 0
    system: str | None = None
    box_format_hints: dict[str, str] = Field(
        default_factory=dict, description="Appended to the prompt for models whose card has this box_format."
    )

    @model_validator(mode="after")
    def _one_source(self) -> PromptSpec:
        if (self.template is None) == (self.pool is None):
            raise ValueError("give exactly one of 'template' or 'pool'")
        if self.pool is not None and not self.pool:
            raise ValueError("'pool' is empty")
        return self


class MetricSpec(Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


# Decoding values a model cannot honour are refused when the YAML is read, not by every sample failing later.
_TEMPERATURE = {"ge": 0, "allow_inf_nan": False}
_TOP_P = {"gt": 0, "le": 1, "allow_inf_nan": False}


class DecodingSpec(Strict):
    temperature: float | None = Field(default=None, **_TEMPERATURE)
    top_p: float | None = Field(default=None, **_TOP_P)
    max_new_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    thinking_retries: int | None = Field(default=None, ge=0)


TransformName = Literal["blank", "noise", "shuffle", "hflip"]
TRANSFORM_NAMES: tuple[str, ...] = ("blank", "noise", "shuffle", "hflip")


class TransformSpec(Strict):
    """An image transform of a derived task `T@NAME` (evalkit/transforms): which one, with which seed."""

    name: TransformName
    seed: int = 0
    version: str = Field(default="1", description="Code version of the transform; part of the derived run id.")


class TaskSpec(Strict):
    """One evaluation task: data + prompt + parser + metrics. See tasks/*.yaml."""

    name: str
    version: str
    kind: Literal["report_generation", "grounding"]
    description: str = ""
    dataset: DatasetSpec
    access: Literal["public", "credentialed"]
    prompt: PromptSpec
    parser: Literal["report", "boxes"]
    metrics: list[MetricSpec]
    primary_metric: str
    decoding: DecodingSpec = Field(default_factory=DecodingSpec)
    groups: list[str] = Field(default_factory=list, description="Task groups this task belongs to.")
    errored_samples: Literal["zero", "exclude"] = Field(
        default="zero",
        description="A sample whose generation failed (unreadable image, adapter error): 'zero' scores it as an "
        "empty answer (0 on the overlap and box metrics), so n stays the task's size and runs stay comparable; "
        "'exclude' leaves it out of n. Either way the run summary, leaderboard and site show it.",
    )
    profile: str = Field(
        default="evalkit", description="Convention profile (evalkit/profiles.py): parsing rules and metric defaults."
    )
    # The profile the task's YAML names and the metric options it writes, kept when `--profile` picks another
    # (evalkit.profiles.with_profile): the run identity changes only for a profile other than the task's own.
    _own_profile: str | None = PrivateAttr(default=None)
    _written_options: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    transforms: list[TransformSpec] = Field(
        default_factory=list,
        description="Image-transform variants of this task (`T@blank`...) that `evalkit reliance` runs; "
        "shorthand: `[blank, hflip]`. Empty: every transform.",
    )
    transform: TransformSpec | None = Field(
        default=None, description="Set on a derived task `T@NAME` only: the transform of its images."
    )

    @model_validator(mode="before")
    @classmethod
    def _metric_shorthand(cls, data: Any) -> Any:
        # `metrics: [rouge_l, bleu_4]` is allowed as shorthand for `[{name: rouge_l}, ...]` (and so are
        # `transforms: [blank]`).
        for key in ("metrics", "transforms"):
            if isinstance(data, dict) and isinstance(data.get(key), list):
                data = dict(data)
                data[key] = [{"name": m} if isinstance(m, str) else m for m in data[key]]
        return data

    @model_validator(mode="after")
    def _transform_named(self) -> TaskSpec:
        # A derived task comes from `T@NAME` (evalkit/transforms/tasks.py); a YAML cannot make one under another name.
        if self.transform is not None and not self.name.endswith(f"@{self.transform.name}"):
            raise ValueError(f"'transform' is set only on derived tasks named TASK@{self.transform.name}")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_variants(self, handler: Any) -> dict[str, Any]:
        # A task without transforms dumps exactly as before they existed: stored specs stay byte-identical.
        data = handler(self)
        if not self.transforms:
            data.pop("transforms", None)
        if self.transform is None:
            data.pop("transform", None)
        return data

    @model_validator(mode="after")
    def _primary_is_listed(self) -> TaskSpec:
        names = [m.name for m in self.metrics]
        if self.primary_metric not in names:
            raise ValueError(f"primary_metric '{self.primary_metric}' is not in metrics {names}")
        return self

    @model_validator(mode="after")
    def _apply_profile(self) -> TaskSpec:
        from evalkit.profiles import PROFILES

        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile '{self.profile}'; known: {', '.join(sorted(PROFILES))}")
        if self._own_profile is None:
            self._own_profile = self.profile
            self._written_options = [dict(m.options) for m in self.metrics]
        # The profile's metric defaults become explicit options, so the stored spec says how each score was made.
        for metric in self.metrics:
            metric.options = PROFILES[self.profile].options_for(metric.name, metric.options)
        return self

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    @property
    def own_profile(self) -> str:
        """The profile the task itself names (its YAML), whichever one this spec now runs under."""
        return self._own_profile or self.profile


class ImageSpec(Strict):
    min_pixels: int | None = Field(default=None, ge=1)
    max_pixels: int | None = Field(default=None, ge=1)


class CardDecoding(Strict):
    temperature: float = Field(default=0.0, **_TEMPERATURE)
    top_p: float = Field(default=1.0, **_TOP_P)
    max_new_tokens: int = Field(default=512, ge=1)
    seed: int = 0
    thinking_retries: int = Field(default=0, ge=0)


class ServingSpec(Strict):
    """How a model is run (parallelism, engine and server settings), as opposed to what it is.

    Parallelism and server addresses change speed, not outputs, so adapters leave them out of the model
    fingerprint; `engine_args` and `extra_body` can change outputs (dtype, sampling extras) and are in it.
    """

    tensor_parallel_size: int = Field(default=1, ge=1, description="vLLM: GPUs per model replica.")
    data_parallel_size: int = Field(default=1, ge=1, description="vLLM: model replicas (vLLM's own DP).")
    distributed_backend: Literal["mp", "ray"] | None = Field(
        default=None, description="vLLM executor backend; 'ray' spans nodes of a running Ray cluster."
    )
    endpoint: str | None = Field(default=None, description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    served_model_name: str | None = Field(default=None, description="Model name on the server (default: checkpoint).")
    max_concurrency: int = Field(default=16, ge=1, description="OpenAI adapter: requests in flight at once.")
    request_timeout_s: float = Field(default=600.0, gt=0, description="OpenAI adapter: seconds per HTTP request.")
    max_request_retries: int = Field(default=6, ge=0, description="OpenAI adapter: retries on 429/5xx/network errors.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Environment variable holding the API key, if any.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra JSON fields for every chat request (e.g. vLLM's top_k)."
    )
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for vllm.LLM (max_model_len, dtype, ...)."
    )


class Lineage(Strict):
    """What a reinforcement-learned model was trained from and for, for models whose card has no `training:`
    block (external checkpoints such as radvlm-grpo): read by `evalkit health` and the gate's Goodhart check."""

    parent: str | None = Field(default=None, description="Card name of the checkpoint training started from.")
    rewards: list[str] = Field(default_factory=list, description="Metric names used as training rewards.")
    source: str = Field(default="", description="Where this is stated (paper, table, config).")


class ModelCard(Strict):
    """How to load and talk to one model. See evalkit/model_adapters/cards/*.yaml."""

    name: str
    adapter: str  # a name in the adapter registry (evalkit/model_adapters/registry.py), checked below
    checkpoint: str
    revision: str | None = None
    family: str = "generic"
    box_format: BoxFormat = "unit01"
    thinking: Literal["none", "tags", "suffix"] = "none"
    answer_convention: Literal["strict", "radvlm_eval", "radvlm_reward", "qwen3vl_json"] | None = Field(
        default=None,
        description="The model's own box convention (evalkit/answers.py), used by profiles that follow the card "
        "(evalkit); the radvlm-grpo profile keeps the seed's regex. Parsing only: not in the model fingerprint.",
    )
    radvlm_path: Literal["vllm", "transformers"] = Field(
        default="vllm",
        description="Which RadVLM-GRPO inference path the paper ran this model through: vllm "
        "(inference_qwen2vl_vllm, answers cut at 4,000 characters) or transformers (a per-model function, no cut).",
    )
    decoding: CardDecoding = Field(default_factory=CardDecoding)
    image: ImageSpec = Field(default_factory=ImageSpec)
    trust_remote_code: bool = False
    public: bool = True
    prompt_suffix: str | None = None
    system_prompt: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    source: str = ""
    description: str = ""
    reference: str | None = Field(
        default=None,
        description="Set for a reference row (e.g. inter-reader agreement), not a model: the leaderboard and site "
        "show it under this label, outside the ranking.",
    )
    training: dict[str, Any] | None = Field(default=None, description="Provenance written by `evalkit train`.")
    published_as: list[str] = Field(
        default_factory=list,
        description="This model's rows in the ledger of published results (evalkit/published.py), as printed "
        "there (e.g. 'RadVLM+RL'): the paper-table view and the site put them beside its runs.",
    )
    lineage: Lineage | None = Field(default=None, description="Parent and training rewards (RL health, Goodhart).")

    @field_validator("adapter")
    @classmethod
    def _registered_adapter(cls, value: str) -> str:
        """The adapter registry is the one list of back ends: adding one touches its module, its registry line and
        a card, never this file. The registry imports this module, so it is looked up when a card is validated."""
        known = importlib.import_module("evalkit.model_adapters.registry").ADAPTERS
        if value not in known:
            raise ValueError(f"unknown adapter '{value}'; known: {', '.join(known)}")
        return value


M = TypeVar("M", bound=BaseModel)


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid {error.title}"]
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field (typo?)"
        lines.append(f"  field '{field}': {message}")
    return "\n".join(lines)


def load_yaml(path: Path) -> Any:
    """Read a YAML file, turning I/O and syntax errors into EvalkitError naming the file.

    Parsed documents are kept by content: resolving cards and tasks parses the same files for every model of a
    run, and PyYAML takes milliseconds a file. Callers get their own copy."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        if text not in _PARSED:
            _PARSED[text] = yaml.safe_load(text)
        return copy.deepcopy(_PARSED[text])
    except FileNotFoundError as exc:
        raise EvalkitError(f"{path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise EvalkitError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save the file as UTF-8 (e.g. `iconv -f latin1 "
            "-t utf-8`)"
        ) from None
    except OSError as exc:
        raise EvalkitError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise EvalkitError(f"{path}: not valid YAML: {exc}") from exc


_PARSED: dict[str, Any] = {}


def parse_spec(model: type[M], data: Any, path: Path) -> M:
    """Validate already-loaded YAML data against a spec model."""
    if not isinstance(data, dict):
        raise EvalkitError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise EvalkitError(_format_validation_error(path, exc)) from None


def load_spec(model: type[M], path: Path) -> M:
    return parse_spec(model, load_yaml(path), path)
