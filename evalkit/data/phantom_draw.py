"""Drawing of one synthetic chest radiograph: jittered anatomy, planted findings, and tight boxes for both.

All shapes live in a canonical frame (0-1, x right, y down, the patient's right on the image left as in a PA
film). Each pixel is mapped back into that frame through the image's pose (shift, scale, rotation), so every
mask is computed on the final pixel grid and every box is the exact bounding box of what was drawn.
Only arithmetic, floor and comparisons touch the pixel grid (no vectorised sin/exp, whose SIMD versions differ
between CPUs), so the same seed gives the same bytes on any machine with the same numpy and Pillow.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

SIDES = ("right", "left")
ZONES = ("upper", "mid", "lower")
CM_PER_UNIT = 42.0  # the canonical thorax (~0.72 wide) is ~30 cm across

FINDING_LABELS = (
    "nodule",
    "mass",
    "consolidation",
    "pleural_effusion",
    "pneumothorax",
    "cardiomegaly",
    "support_device",
)
REGION_NAMES = (
    "right lung",
    "left lung",
    "cardiac silhouette",
    "mediastinum",
    "right costophrenic angle",
    "left costophrenic angle",
    "right upper lung zone",
    "right mid lung zone",
    "right lower lung zone",
    "left upper lung zone",
    "left mid lung zone",
    "left lower lung zone",
    "trachea",
)
# Nodules and devices may appear twice in one image; the other labels at most once.
_LABEL_WEIGHTS = {
    "nodule": 0.12,
    "mass": 0.12,
    "consolidation": 0.17,
    "pleural_effusion": 0.19,
    "pneumothorax": 0.12,
    "cardiomegaly": 0.18,
    "support_device": 0.10,
}
_REPEATABLE = {"nodule", "support_device"}
_COUNT_PROBS = (0.30, 0.45, 0.18, 0.07)  # 0..3 findings; ~30% normal

# Intensities in 0-1 before noise.
_BACKGROUND, _SOFT_TISSUE, _LUNG, _PNEUMO = 0.03, 0.40, 0.15, 0.02
_SPINE, _MEDIASTINUM, _HEART, _TRACHEA = 0.52, 0.60, 0.62, 0.30


@dataclass
class Finding:
    """One planted finding: what it is, where, and the pixel mask actually drawn."""

    label: str
    side: str | None = None
    zone: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # size_cm, extent, device
    box: list[float] | None = None


@dataclass
class Rendered:
    image: np.ndarray  # uint8, (size, size)
    findings: list[Finding]
    regions: list[tuple[str, list[float]]]


@dataclass(frozen=True)
class Lung:
    """A lung field: an ellipse cut medially by the mediastinum and below by the diaphragm dome."""

    side: str
    xc: float
    yc: float
    a: float
    b: float
    medial_x: float
    cp_y: float
    dome_h: float

    @property
    def sign(self) -> int:
        """Direction of the lateral wall in image x (the right lung is on the image left)."""
        return -1 if self.side == "right" else 1

    @property
    def lateral_x(self) -> float:
        return self.xc + self.sign * self.a

    @property
    def top(self) -> float:
        return self.yc - self.b

    def dome(self, u: np.ndarray) -> np.ndarray:
        # Lowest at the lateral wall (sharp costophrenic angle), highest two thirds of the way to the midline.
        s = np.clip((u - self.lateral_x) / (self.medial_x - self.lateral_x), 0.0, 1.0)
        return self.cp_y - self.dome_h * s * (1.3 - s) / 0.4225

    def in_ellipse(self, u: np.ndarray, v: np.ndarray, shrink_x: float = 0.0, shrink_y: float = 0.0) -> np.ndarray:
        du, dv = (u - self.xc) / (self.a - shrink_x), (v - self.yc) / (self.b - shrink_y)
        return du * du + dv * dv < 1.0

    def contains(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        medial = u < self.medial_x if self.side == "right" else u > self.medial_x
        return self.in_ellipse(u, v) & medial & (v < self.dome(u))

    def zone_bounds(self, zone: str) -> tuple[float, float]:
        # Chest ImaGenome-style zones: thirds of the lung's height, apex to costophrenic angle.
        k = ZONES.index(zone)
        step = (self.cp_y - self.top) / 3.0
        return self.top + k * step, self.top + (k + 1) * step

    def zone_of(self, v: float) -> str:
        step = (self.cp_y - self.top) / 3.0
        return ZONES[min(2, max(0, int((v - self.top) // step)))]


@dataclass(frozen=True)
class Anatomy:
    lungs: dict[str, Lung]
    heart: tuple[float, float, float, float, float]  # cx, cy, ax, ay, base_y
    mid_x: float
    carina_y: float

    def heart_mask(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        cx, cy, ax, ay, base = self.heart
        hu, hv = (u - cx) / ax, (v - cy) / ay
        return (hu * hu + hv * hv < 1.0) & (v < base)

    def mediastinum_mask(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Central band widening downwards, plus the aortic knob on the patient's left."""
        width = 0.04 + 0.025 * np.clip((v - 0.05) / 0.57, 0.0, 1.0)
        band = (np.abs(u - self.mid_x) < width) & (v > 0.05) & (v < 0.62)
        return band | (_disc(u, v, self.mid_x + 0.055, 0.26, 0.035) > 0)

    def covered(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Where heart or mediastinum hide the lung: findings are kept out of there."""
        return self.heart_mask(u, v) | self.mediastinum_mask(u, v)


def mask_box(mask: np.ndarray) -> list[float] | None:
    """Tight [x1, y1, x2, y2] (0-1, pixel edges) around the True pixels, or None when nothing was drawn."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return [round(float(x), 4) for x in (cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h)]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def plan_labels(rng: np.random.Generator) -> list[str]:
    """0..3 finding labels; only nodules and devices may repeat."""
    n = int(rng.choice(len(_COUNT_PROBS), p=_COUNT_PROBS))
    names = list(_LABEL_WEIGHTS)
    weights = np.array(list(_LABEL_WEIGHTS.values()))
    labels: list[str] = []
    while len(labels) < n:
        label = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        if label in labels and label not in _REPEATABLE:
            continue
        labels.append(label)
    # Drawing order: fluid and air first (they replace lung), then opacities, devices last (on top).
    return sorted(labels, key=FINDING_LABELS.index)


def _anatomy(rng: np.random.Generator, cardiomegaly: bool) -> Anatomy:
    lungs: dict[str, Lung] = {}
    top = _u(rng, 0.13, 0.17)
    cp_right = _u(rng, 0.72, 0.76)
    for side in SIDES:
        a = _u(rng, 0.16, 0.175)
        lateral = _u(rng, 0.125, 0.15)
        cp_y = cp_right if side == "right" else cp_right + _u(rng, 0.0, 0.03)  # right dome sits higher
        yc = cp_y - 0.10
        xc = lateral + a if side == "right" else 1.0 - lateral - a
        medial = _u(rng, 0.445, 0.46) if side == "right" else _u(rng, 0.54, 0.555)
        lungs[side] = Lung(side, xc, yc, a, yc - top, medial, cp_y, _u(rng, 0.07, 0.10))
    cx, cy, ay = _u(rng, 0.54, 0.56), _u(rng, 0.585, 0.61), _u(rng, 0.10, 0.12)
    ax = _u(rng, 0.13, 0.155)
    if cardiomegaly:
        cx, ax, ay = cx + 0.02, _u(rng, 0.215, 0.24), ay * 1.15
    base = lungs["left"].cp_y - 0.05
    return Anatomy(lungs, (cx, cy, ax, ay, base), _u(rng, 0.495, 0.505), _u(rng, 0.29, 0.32))


def _canonical_grid(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Canonical (u, v) of each pixel centre under a small random shift, scale and rotation."""
    sx, sy = _u(rng, -0.015, 0.015), _u(rng, -0.015, 0.015)
    scale, angle = _u(rng, 0.97, 1.02), math.radians(_u(rng, -1.5, 1.5))
    c, s = math.cos(angle), math.sin(angle)
    p = ((np.arange(size, dtype=np.float32) + 0.5) / size - 0.5).astype(np.float32)
    x, y = p[None, :] - np.float32(sx), p[:, None] - np.float32(sy)
    u = 0.5 + (c * x + s * y) / scale
    v = 0.5 + (-s * x + c * y) / scale
    return u.astype(np.float32), v.astype(np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency texture in [-1, 1]: coarse noise upsampled bicubically."""
    coarse = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, "F").resize((size, size), Image.BICUBIC), dtype=np.float32)


def _disc(u: np.ndarray, v: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    """1 at the centre falling to 0 at radius r (negative outside)."""
    du, dv = u - cx, v - cy
    return 1.0 - (du * du + dv * dv) / (r * r)


def _segment_dist2(u: np.ndarray, v: np.ndarray, p: tuple[float, float], q: tuple[float, float]) -> np.ndarray:
    dx, dy = q[0] - p[0], q[1] - p[1]
    t = np.clip(((u - p[0]) * dx + (v - p[1]) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    ex, ey = u - (p[0] + t * dx), v - (p[1] + t * dy)
    return ex * ex + ey * ey


_H = math.sqrt(0.5)
_RING = np.array([(1, 0), (_H, _H), (0, 1), (-_H, _H), (-1, 0), (-_H, -_H), (0, -1), (_H, -_H)])  # exact


class _Placer:
    """Rejection-samples finding centres inside a lung zone, away from findings already placed."""

    def __init__(self, rng: np.random.Generator, anatomy: Anatomy) -> None:
        self.rng, self.anatomy = rng, anatomy
        self.circles: list[tuple[str, float, float, float]] = []  # side, cx, cy, r
        self.below: dict[str, float] = {}  # side -> keep above this y (effusion)
        self.rim: dict[str, tuple[float, float]] = {}  # side -> pneumothorax rim widths

    def free(self, side: str, xs: np.ndarray, ys: np.ndarray) -> bool:
        lung = self.anatomy.lungs[side]
        if not (lung.contains(xs, ys) & ~self.anatomy.covered(xs, ys)).all():
            return False
        if side in self.below and (ys > self.below[side]).any():
            return False
        if side in self.rim and (~lung.in_ellipse(xs, ys, *self.rim[side])).any():
            return False
        return all(s != side or ((xs - x) ** 2 + (ys - y) ** 2 > r * r).all() for s, x, y, r in self.circles)

    def place(self, r: float, sides: tuple[str, ...] = SIDES) -> tuple[str, str, float, float] | None:
        for _ in range(40):
            side = sides[int(self.rng.integers(len(sides)))]
            zone = ZONES[int(self.rng.integers(3))]
            lung = self.anatomy.lungs[side]
            lo, hi = sorted((lung.lateral_x, lung.medial_x))
            v0, v1 = lung.zone_bounds(zone)
            cx, cy = _u(self.rng, lo, hi), _u(self.rng, v0, v1)
            xs = np.append(cx + 1.6 * r * _RING[:, 0], cx)
            ys = np.append(cy + 1.6 * r * _RING[:, 1], cy)
            if lung.zone_of(cy) == zone and self.free(side, xs, ys):
                self.circles.append((side, cx, cy, 1.6 * r))
                return side, zone, cx, cy
        return None


def render(rng: np.random.Generator, size: int) -> Rendered:
    """Draw one radiograph with its planned findings; findings that found no room are dropped."""
    labels = plan_labels(rng)
    anatomy = _anatomy(rng, cardiomegaly="cardiomegaly" in labels)
    u, v = _canonical_grid(rng, size)
    lungs = {side: lung.contains(u, v) for side, lung in anatomy.lungs.items()}
    mid = anatomy.mid_x
    d = np.abs(u - mid)
    heart, mediastinum = anatomy.heart_mask(u, v), anatomy.mediastinum_mask(u, v)
    open_lungs = {side: mask & ~heart & ~mediastinum for side, mask in lungs.items()}

    # Soft tissue, denser below the diaphragm (liver, stomach).
    du, dv = (u - 0.5) / 0.45, (v - 0.6) / 0.56
    body = du * du + dv * dv < 1.0
    img = np.where(body, _SOFT_TISSUE + 0.06 * (v > 0.72), _BACKGROUND).astype(np.float32)

    # Lungs: dark fields with vascular markings denser towards the hila.
    texture = _smooth_noise(rng, size, 24)
    lung_px = np.zeros_like(img)
    for side, lung in anatomy.lungs.items():
        hilum = _disc(u, v, mid + lung.sign * 0.09, 0.45, 0.22)
        lung_px = np.where(lungs[side], _LUNG + 0.07 * np.clip(hilum, 0, 1) + 0.035 * texture, lung_px)
    any_lung = lungs["right"] | lungs["left"]

    findings: list[Finding] = []
    placer = _Placer(rng, anatomy)
    pneumo = np.zeros_like(any_lung)
    effusion_layers: list[tuple[np.ndarray, np.ndarray]] = []
    for label in (lab for lab in labels if lab in ("pleural_effusion", "pneumothorax")):
        taken = {f.side for f in findings}
        side = [s for s in SIDES if s not in taken][int(rng.integers(2 - len(taken)))]
        lung = anatomy.lungs[side]
        s = np.clip((u - lung.lateral_x) / (lung.medial_x - lung.lateral_x), 0.0, 1.0)
        if label == "pleural_effusion":
            extent = ("small", "moderate", "large")[int(rng.integers(3))]
            depth = {"small": (0.05, 0.08), "moderate": (0.11, 0.16), "large": (0.19, 0.26)}[extent]
            level0 = lung.cp_y - _u(rng, *depth)
            level = level0 - 0.05 * (1.0 - s) * (1.0 - s)  # meniscus climbs the lateral wall
            mask = open_lungs[side] & (v > level)
            effusion_layers.append((mask, np.clip((v - level) / 0.05, 0.0, 1.0)))
            placer.below[side] = level0 - 0.05 - 0.03
            findings.append(Finding(label, side, "lower", {"extent": extent}, mask_box(mask)))
        else:
            extent = ("small", "moderate", "large")[int(rng.integers(3))]
            wx = {"small": 0.035, "moderate": 0.05, "large": 0.07}[extent]
            wy = 2.0 * wx
            lateral_or_apical = ((u - lung.xc) * lung.sign > 0) | (v < lung.yc - 0.4 * lung.b)
            region = open_lungs[side] & lateral_or_apical & (v < lung.cp_y - 0.12)
            crescent = region & ~lung.in_ellipse(u, v, wx, wy)
            line = region & lung.in_ellipse(u, v, wx, wy) & ~lung.in_ellipse(u, v, wx + 0.006, wy + 0.006)
            pneumo |= crescent
            lung_px = np.where(line, lung_px + 0.22, lung_px)
            placer.rim[side] = (wx + 0.03, wy + 0.03)
            findings.append(Finding(label, side, None, {"extent": extent}, mask_box(crescent | line)))
    lung_px = np.where(pneumo, _PNEUMO, lung_px)
    img = np.where(any_lung, lung_px, img)

    # Posterior ribs: arcs rising from the spine then falling laterally; faint outside the lungs.
    arc = v + 0.35 * (d - 0.03) - 2.0 * (d - 0.03) * (d - 0.03)
    phase = (arc - _u(rng, 0.13, 0.16)) / 0.058
    rib = (phase >= 0) & (phase < 11) & (phase - np.floor(phase) < 0.32) & (d > 0.04) & (d < 0.40) & body
    img += np.where(rib, np.where(any_lung, 0.08, 0.03), 0.0).astype(np.float32)

    # Spine with vertebral bodies, mediastinum with aortic knob, heart, trachea.
    vert = np.abs(2.0 * ((v / 0.055) - np.floor(v / 0.055)) - 1.0)
    spine = (d < 0.035) & body
    img = np.where(spine, _SPINE + 0.05 * vert, img)
    img = np.where(mediastinum, _MEDIASTINUM + 0.02 * vert, img)
    img = np.where(heart, _HEART + 0.02 * vert + 0.3 * np.where(rib, 0.04, 0.0), img)
    trachea = (np.abs(u - mid) < 0.012) & (v > 0.04) & (v < anatomy.carina_y)
    img = np.where(trachea, _TRACHEA, img)
    if "cardiomegaly" in labels:
        findings.append(Finding("cardiomegaly", None, None, {}, mask_box(heart)))

    for mask, ramp in effusion_layers:  # fluid hides the lung base and the dome, blunting the angle
        img = np.where(mask, 0.30 + 0.18 * ramp + np.where(rib, 0.02, 0.0), img)

    for label in labels:
        if label in ("nodule", "mass", "consolidation"):
            found = _draw_opacity(label, rng, placer, u, v, open_lungs)
            if found is not None:
                finding, mask, add = found
                img = img + np.where(mask, add, 0.0).astype(np.float32)
                findings.append(finding)
        elif label == "support_device":
            used = {f.attrs.get("device") for f in findings} - {None}
            if used:
                device = "cvc" if "ett" in used else "ett"
            else:
                device = "ett" if rng.random() < 0.6 else "cvc"
            mask, attrs = _draw_device(device, rng, anatomy, u, v)
            img = np.where(mask, np.maximum(img, 0.55) + 0.3, img)
            side = "right" if device == "cvc" else None
            findings.append(Finding(label, side, None, attrs, mask_box(mask)))

    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.018)
    pixels = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    blurred = Image.fromarray(pixels, "L").filter(ImageFilter.GaussianBlur(0.7))

    regions = _regions(anatomy, u, v, lungs, heart, mediastinum, trachea)
    return Rendered(np.asarray(blurred), [f for f in findings if f.box is not None], regions)


def _draw_opacity(
    label: str,
    rng: np.random.Generator,
    placer: _Placer,
    u: np.ndarray,
    v: np.ndarray,
    lungs: dict[str, np.ndarray],
) -> tuple[Finding, np.ndarray, np.ndarray] | None:
    """A nodule (small disc), mass (lobulated discs) or consolidation (blob cloud), clipped to the lung."""
    r = {"nodule": _u(rng, 0.011, 0.02), "mass": _u(rng, 0.05, 0.07), "consolidation": 0.085}[label]
    where = placer.place(r)
    if where is None:
        return None
    side, zone, cx, cy = where
    lung = placer.anatomy.lungs[side]
    if label == "nodule":
        profile = _disc(u, v, cx, cy, r)
        mask, add = lungs[side] & (profile > 0), 0.22 + 0.18 * np.clip(profile, 0, 1)
        attrs = {"size_cm": round(2 * r * CM_PER_UNIT, 1)}
    elif label == "mass":
        profile = _disc(u, v, cx, cy, r)
        for _ in range(3):
            ang, rr = _u(rng, 0.0, 2 * math.pi), r * _u(rng, 0.4, 0.6)
            lobe = _disc(u, v, cx + 0.75 * r * math.cos(ang), cy + 0.75 * r * math.sin(ang), rr)
            profile = np.maximum(profile, lobe)
        mask, add = lungs[side] & (profile > 0), 0.20 + 0.15 * np.clip(profile, 0, 1)
        attrs = {"size_cm": round(2.3 * r * CM_PER_UNIT, 1)}
    else:
        v0, v1 = lung.zone_bounds(zone)
        field_ = np.zeros_like(u)
        for _ in range(int(rng.integers(4, 7))):
            bx, by = cx + _u(rng, -0.06, 0.06), cy + _u(rng, -0.04, 0.04)
            blob = np.clip(_disc(u, v, bx, by, _u(rng, 0.035, 0.065)), 0.0, 1.0)
            field_ += blob * blob
        cloud = _smooth_noise(rng, u.shape[0], 40)
        mask = lungs[side] & (field_ > 0.2) & (v >= v0) & (v < v1)
        add = 0.25 + 0.15 * np.clip(field_, 0, 1) + 0.05 * cloud
        attrs = {}
    return Finding(label, side, zone, attrs, mask_box(mask)), mask, add


def _draw_device(
    device: str, rng: np.random.Generator, anatomy: Anatomy, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Endotracheal tube down the trachea, or a right internal jugular line ending in the SVC."""
    mid = anatomy.mid_x
    if device == "ett":
        tip = anatomy.carina_y - _u(rng, 0.04, 0.09)
        x = mid + _u(rng, -0.004, 0.004)
        mask = (np.abs(u - x) < 0.005) & (v < tip)
        return mask, {"device": "ett", "tip_cm": round((anatomy.carina_y - tip) * CM_PER_UNIT)}
    pts = [
        (_u(rng, 0.33, 0.37), -0.02),
        (_u(rng, 0.40, 0.42), 0.13),
        (mid - _u(rng, 0.03, 0.04), 0.24),
        (mid - _u(rng, 0.02, 0.03), _u(rng, 0.32, 0.37)),
    ]
    dist2 = np.minimum.reduce([_segment_dist2(u, v, p, q) for p, q in itertools.pairwise(pts)])
    return dist2 < 0.004 * 0.004, {"device": "cvc"}


def _regions(
    anatomy: Anatomy,
    u: np.ndarray,
    v: np.ndarray,
    lungs: dict[str, np.ndarray],
    heart: np.ndarray,
    mediastinum: np.ndarray,
    trachea: np.ndarray,
) -> list[tuple[str, list[float]]]:
    masks: dict[str, np.ndarray] = {
        "right lung": lungs["right"],
        "left lung": lungs["left"],
        "cardiac silhouette": heart,
        "mediastinum": mediastinum,
    }
    for side, lung in anatomy.lungs.items():
        lat = lung.lateral_x
        lo, hi = (lat - 0.01, lat + 0.10) if side == "right" else (lat - 0.10, lat + 0.01)
        window = (u > lo) & (u < hi) & (v > lung.cp_y - 0.09)
        masks[f"{side} costophrenic angle"] = lungs[side] & window
    for side, lung in anatomy.lungs.items():
        for zone in ZONES:
            v0, v1 = lung.zone_bounds(zone)
            masks[f"{side} {zone} lung zone"] = lungs[side] & (v >= v0) & (v < v1)
    masks["trachea"] = trachea
    out = []
    for name in REGION_NAMES:
        box = mask_box(masks[name])
        if box is not None:
            out.append((name, box))
    return out
