"""pycocotools' COCO evaluation grid, shared by the COCO AP metric (evalkit/metrics/grounding.py) and its
resampling kernels (evalkit/metrics/coco_resample.py) without either importing the other back."""

from __future__ import annotations

import numpy as np

# The very expressions of pycocotools' `Params.setDetParams`, so the floats are bit-identical.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
