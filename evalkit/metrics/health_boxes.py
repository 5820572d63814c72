"""RL-health diagnostics of grounding answers: how many boxes an answer gives against the reference, and the
degenerate answers an IoU reward can drift to (no box, the whole image) (docs/rl-health.md).

An IoU-style reward (soft-F1 IoU in RadVLM-GRPO) can be gamed by boxes that cover everything: a whole-image box
always overlaps a large finding. These shares make that visible per run, with CIs and paired tests like any metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from evalkit.metrics import register_metric
from evalkit.metrics.base import Metric, MetricOptions, SampleScore
from evalkit.metrics.grounding import iou_matrix
from evalkit.sample import Parsed, Sample

WHOLE_IMAGE = [0.0, 0.0, 1.0, 1.0]


class _BoxDiagnostic(Metric):
    kind = "grounding"
    higher_is_better = False
    gated_by_default: ClassVar[bool] = False
    diagnostic: ClassVar[bool] = True


@register_metric
class BoxCountExcess(_BoxDiagnostic):
    """Predicted boxes minus reference boxes, per sample (mean > 0: the model over-boxes; < 0: it under-boxes)."""

    name = "box_count_excess"
    description = "mean of (predicted boxes - reference boxes) per answer"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        return [
            SampleScore(float(len(p.boxes) - len(s.reference_boxes)), {"n_pred": len(p.boxes)})
            for p, s in zip(predictions, samples, strict=True)
        ]


@register_metric
class NoBoxRate(_BoxDiagnostic):
    name = "no_box_rate"
    description = "share of answers without any parsed box"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        return [SampleScore(0.0 if p.boxes else 1.0, {}) for p in predictions]


@register_metric
class WholeImageBoxRate(_BoxDiagnostic):
    """Share of answers holding a box with IoU >= `min_iou` with the whole image (the `whole-image` baseline's
    answer)."""

    name = "whole_image_box_rate"
    description = "share of answers with a box of IoU >= 0.9 with the whole image"

    class Options(MetricOptions):
        min_iou: float = Field(default=0.9, gt=0, le=1, description="IoU with [0,0,1,1] that counts as whole-image")

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred in predictions:
            hit = bool(pred.boxes) and float(iou_matrix(pred.boxes, [WHOLE_IMAGE]).max()) >= self.typed_options.min_iou
            out.append(SampleScore(1.0 if hit else 0.0, {}))
        return out
