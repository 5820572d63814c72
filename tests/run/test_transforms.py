"""Image transforms and derived tasks `T@NAME` (evalkit/transforms): exact boxes, laterality words, derangements,
deterministic pixels, specs and run ids."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from evalkit import evaluate
from evalkit.answers import format_boxes
from evalkit.cli import app
from evalkit.config import TaskSpec, TransformSpec
from evalkit.errors import EvalkitError
from evalkit.images import image_exists, image_hash, image_size, load_image
from evalkit.model_adapters.base import GenerationResult, stable_hash
from evalkit.registry import resolve_tasks
from evalkit.run.runner import load_samples, run_id_for
from evalkit.sample import Sample, cluster_units
from evalkit.store import Store
from evalkit.transforms.laterality import swap_laterality
from evalkit.transforms.pixels import virtual_path
from evalkit.transforms.samples import apply_transform, derangement, mirror_box
from evalkit.transforms.tasks import derive_task

# --- hflip: boxes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "mirrored"),
    [
        ([0.1, 0.2, 0.3, 0.4], [0.7, 0.2, 0.9, 0.4]),
        ([0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]),
        ([0.5, 0.0, 0.75, 1.0], [0.25, 0.0, 0.5, 1.0]),
        ([0.0, 0.5, 0.25, 0.75], [0.75, 0.5, 1.0, 0.75]),
    ],
)
def test_mirror_box_hand_made(box, mirrored):
    assert mirror_box(box) == pytest.approx(mirrored, abs=1e-12)
    assert mirror_box(mirror_box(box)) == pytest.approx(box, abs=1e-12)


def test_hflip_pixels_and_box_move_together(tmp_path):
    """A white rectangle on black: its pixel box in the mirrored image is exactly the mirrored 0-1 box."""
    width, height = 200, 100
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[10:40, 20:70] = 255  # x 20..70, y 10..40 (exclusive ends)
    path = tmp_path / "rect.png"
    Image.fromarray(pixels, "L").save(path)
    flipped = np.asarray(load_image(virtual_path("hflip", 0, str(path))).convert("L"))
    ys, xs = np.nonzero(flipped)
    found = [xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height]
    assert found == pytest.approx(mirror_box([20 / width, 10 / height, 70 / width, 40 / height]), abs=1e-12)
    assert image_size(virtual_path("hflip", 0, str(path))) == (width, height)


# --- hflip: laterality words --------------------------------------------------------------------------------------


def test_laterality_rule_edge_cases():
    cases = {
        "Left lower lobe opacity.": "Right lower lobe opacity.",
        "RIGHT-SIDED effusion": "LEFT-SIDED effusion",
        "Right-sided catheter, tip deviated leftward.": "Left-sided catheter, tip deviated rightward.",
        "Lingular nodule.": "Right middle lobe nodule.",
        "right middle lobe consolidation": "lingular consolidation",
        "A bright, leftover copyright line.": "A bright, leftover copyright line.",  # no whole word to swap
        "No acute cardiopulmonary process.": "No acute cardiopulmonary process.",
    }
    for before, after in cases.items():
        assert swap_laterality(before).after == after, before


def test_hflip_swaps_laterality_on_phantom_reports(data_root):
    """Every word the rule changed on the phantom reports, and the sentences it changed (hand-checked list)."""
    task = resolve_tasks("phantom-report")[0]
    samples = load_samples(task, data_root)
    words: set[tuple[str, str]] = set()
    changed_sentences: dict[str, str] = {}
    for sample in samples:
        for sentence in sample.reference_text.split(". "):
            swap = swap_laterality(sentence)
            words.update(swap.words)
            if swap.words:
                changed_sentences[sentence] = swap.after
            assert swap_laterality(swap.after).after == sentence  # the rule is its own inverse on these reports
    assert words <= {
        ("left", "right"),
        ("right", "left"),
        ("Right", "Left"),
        ("Left", "Right"),
        ("lingular", "right middle lobe"),
        ("Lingular", "Right middle lobe"),
        ("right middle lobe", "lingular"),
        ("Right middle lobe", "Lingular"),
    }
    assert {("left", "right"), ("right", "left")} <= words
    for before, after in changed_sentences.items():
        assert before != after
        # Only laterality words differ: the sentences agree once both sides' laterality words are masked.
        mask = [
            w.lower()
            .replace("right middle lobe", "X")
            .replace("lingular", "X")
            .replace("left", "X")
            .replace("right", "X")
            for w in (before, after)
        ]
        assert mask[0] == mask[1], (before, after)
    # The derived task applies the rule to every reference and mirrors nothing else.
    flipped = apply_transform(TransformSpec(name="hflip"), samples)
    for original, mirrored in zip(samples, flipped, strict=True):
        assert mirrored.reference_text == swap_laterality(original.reference_text).after
        assert mirrored.sample_id == original.sample_id


def test_hflip_grounding_mirrors_boxes_and_phrases(data_root):
    task = resolve_tasks("phantom-phrase-grounding")[0]
    samples = load_samples(task, data_root)
    flipped = load_samples(derive_task(task, "hflip"), data_root)
    assert [s.sample_id for s in flipped] == [s.sample_id for s in samples]
    for original, mirrored in zip(samples, flipped, strict=True):
        assert mirrored.reference_boxes == [mirror_box(b) for b in original.reference_boxes]
        assert mirrored.prompt_vars["phrase"] == swap_laterality(original.prompt_vars["phrase"]).after
        assert mirrored.meta.get("side") == {"left": "right", "right": "left"}.get(original.meta.get("side"))
        assert mirrored.image_paths == [virtual_path("hflip", 0, p) for p in original.image_paths]


class MirrorAnswers:
    """Answers fixed boxes per sample (a shifted reference box); on `T@hflip` the same boxes mirrored."""

    def __init__(self, card, answers):
        self.card, self.answers, self.kind = card, answers, "grounding"

    def prepare(self, task, train_samples):
        self.task = task

    def fingerprint(self):
        return stable_hash("mirror-answers")

    def generate(self, requests):
        out = []
        for r in requests:
            boxes = self.answers[r.sample.sample_id]
            if self.task.transform is not None:
                boxes = [mirror_box(b) for b in boxes]
            out.append(GenerationResult(text=format_boxes(boxes, "unit01")))
        return out


def test_mirrored_answers_on_mirrored_images_score_the_same(data_root, db):
    from evalkit.registry import resolve_model
    from evalkit.results.queries import sample_values

    card = resolve_model("whole-image")
    task = resolve_tasks("phantom-abnormality-grounding")[0]
    # Per-sample metrics only (COCO AP's stored CIs take seconds); each is a function of (answer, reference) boxes.
    task = task.model_copy(update={"metrics": [m for m in task.metrics if not m.name.startswith("coco")]})
    rng = np.random.default_rng(0)
    answers = {}
    for s in load_samples(task, data_root):
        shift = rng.uniform(-0.05, 0.05, size=2)
        answers[s.sample_id] = [
            [b[0] + shift[0], b[1] + shift[1], b[2] + shift[0], b[3] + shift[1]] for b in s.reference_boxes
        ] + [[0.1, 0.1, 0.2, 0.2]]
    adapter = MirrorAnswers(card, answers)
    (plain,) = evaluate(card, task, db=db, data_root=data_root, adapter=adapter)
    (flipped,) = evaluate(card, derive_task(task, "hflip"), db=db, data_root=data_root, adapter=adapter)
    assert plain.run_id != flipped.run_id
    assert set(plain.metrics) == set(flipped.metrics) and plain.metrics["miou"] > 0.2
    for name, value in plain.metrics.items():
        assert flipped.metrics[name] == pytest.approx(value, abs=1e-9), name
    with Store(db, read_only=True) as store:
        a = {(sid, m): v for sid, m, v in sample_values(store, plain.run_id)}
        b = {(sid, m): v for sid, m, v in sample_values(store, flipped.run_id)}
    assert a.keys() == b.keys()
    assert all(b[k] == pytest.approx(v, abs=1e-9) for k, v in a.items() if v is not None)


# --- shuffle: a derangement by seed, never the same patient --------------------------------------------------------


def test_derangement_is_a_seeded_bijection_across_patients():
    items = [f"img{i}" for i in range(30)]
    groups = [f"p{i // 3}" for i in range(30)]  # ten patients, three images each
    group_of = dict(zip(items, groups, strict=True))
    first = derangement(items, groups, seed=0)
    assert sorted(first.values()) == sorted(items)  # a bijection
    assert all(group_of[a] != group_of[b] for a, b in first.items())  # never the same patient
    assert derangement(items, groups, seed=0) == first
    assert derangement(items, groups, seed=1) != first
    with pytest.raises(EvalkitError, match="belong to one patient"):
        derangement(["a", "b", "c"], ["p", "p", "q"], seed=0)


def test_shuffle_task_shows_another_patients_image(data_root):
    task = resolve_tasks("phantom-anatomy-grounding")[0]
    samples = load_samples(task, data_root)
    shuffled = load_samples(derive_task(task, "shuffle"), data_root)
    by_id = {s.sample_id: s for s in samples}
    donors = set()
    for original, shown in zip(samples, shuffled, strict=True):
        donor = by_id[shown.meta["shuffled_from"]]
        assert shown.image_paths == donor.image_paths != original.image_paths
        assert donor.cluster != original.cluster
        assert shown.reference_boxes == original.reference_boxes  # scored against its own reference
        donors.add(donor.sample_id)
    assert len(donors) == len(samples)
    assert [s.image_paths for s in load_samples(derive_task(task, "shuffle"), data_root)] == [
        s.image_paths for s in shuffled
    ]
    # Several images of one patient: none is given another image of the same patient.
    many = [
        Sample(sample_id=f"s{i}", task="t", image_paths=[f"/x/{i}.png"], units=cluster_units(image=i, patient=i % 4))
        for i in range(12)
    ]
    for s, shown in zip(many, apply_transform(TransformSpec(name="shuffle", seed=5), many), strict=True):
        donor = next(d for d in many if d.sample_id == shown.meta["shuffled_from"])
        assert donor.units["patient"] != s.units["patient"]


# --- blank and noise: deterministic pixels, cache keys that see them -----------------------------------------------


def test_blank_and_noise_are_deterministic_and_keep_what_they_should(data_root):
    task = resolve_tasks("phantom-report")[0]
    first, second = (s.image_paths[0] for s in load_samples(task, data_root)[:2])
    original = np.asarray(load_image(first))
    blank = np.asarray(load_image(virtual_path("blank", 0, first)))
    grey = round(float(np.asarray(Image.open(first).convert("L"), dtype=np.float64).mean()))
    assert blank.shape == original.shape and (blank == grey).all()
    noise = np.asarray(load_image(virtual_path("noise", 0, first)))
    assert noise.shape == original.shape and not np.array_equal(noise, original)
    assert np.array_equal(np.sort(noise.reshape(-1, 3), axis=0), np.sort(original.reshape(-1, 3), axis=0))
    assert np.array_equal(noise, np.asarray(load_image(virtual_path("noise", 0, first))))
    assert not np.array_equal(noise, np.asarray(load_image(virtual_path("noise", 1, first))))
    # Cache keys hash the transformed pixels: blank images of equal size and grey share one, others differ.
    assert image_hash(virtual_path("noise", 0, first)) != image_hash(first)
    assert image_hash(virtual_path("noise", 0, first)) != image_hash(virtual_path("noise", 1, first))
    blank_second = np.asarray(load_image(virtual_path("blank", 0, second)))
    same_grey = bool((blank_second == grey).all())
    assert (image_hash(virtual_path("blank", 0, first)) == image_hash(virtual_path("blank", 0, second))) == same_grey
    assert image_exists(virtual_path("blank", 0, first)) and not image_exists(virtual_path("blank", 0, first + "x"))


# --- derived tasks: specs, run ids, access, the CLI ----------------------------------------------------------------


def test_derived_task_spec_and_untouched_originals(data_root, db):
    task = resolve_tasks("phantom-anatomy-grounding")[0]
    assert "transform" not in task.model_dump() and "transforms" not in task.model_dump()
    # The run id formula of untransformed tasks is the one every stored run was made with.
    assert run_id_for(task, "fp") == stable_hash(
        task.name, task.version, task.dataset.model_dump(exclude={"root"}), "fp"
    )
    (derived,) = resolve_tasks("phantom-anatomy-grounding@blank")
    assert derived.name == "phantom-anatomy-grounding@blank" and derived.version == task.version
    assert derived.transform == TransformSpec(name="blank", seed=0) and derived.groups == []
    assert run_id_for(derived, "fp") != run_id_for(derive_task(task, TransformSpec(name="blank", seed=1)), "fp")
    (summary,) = evaluate("prior-box", derived, db=db, data_root=data_root, limit=3)
    with Store(db, read_only=True) as store:
        (row,) = store.query("SELECT task, task_spec, access FROM runs WHERE run_id = ?", [summary.run_id])
    spec = json.loads(row["task_spec"])
    assert row["task"] == derived.name and row["access"] == "public"
    assert spec["transform"] == {"name": "blank", "seed": 0, "version": "1"} and spec["version"] == task.version
    # Nothing is written next to the data.
    assert sorted(p.name for p in (data_root / "phantom").iterdir()) == ["images", "phantom.json"]
    assert all(p.name.startswith("ph-") for p in (data_root / "phantom" / "images").iterdir())


def test_credentialed_variants_stay_credentialed_and_yaml_seeds(tmp_path):
    (mimic,) = resolve_tasks("mimic-cxr-report@shuffle")
    assert mimic.access == "credentialed"
    data = resolve_tasks("phantom-report")[0].model_dump()
    data.update(name="mine", transforms=["blank", {"name": "shuffle", "seed": 3}])
    declared = TaskSpec.model_validate(data)
    assert derive_task(declared, "shuffle").transform == TransformSpec(name="shuffle", seed=3)
    assert derive_task(declared, "hflip").transform == TransformSpec(name="hflip", seed=0)
    assert TaskSpec.model_validate(derive_task(declared, "noise").model_dump()).transform.name == "noise"
    with pytest.raises(ValueError, match="only on derived tasks named TASK@blank"):
        TaskSpec.model_validate({**declared.model_dump(), "transform": {"name": "blank"}})
    with pytest.raises(EvalkitError, match="did you mean 'blank'"):
        derive_task(declared, "blnk")
    with pytest.raises(EvalkitError, match="already a derived task"):
        derive_task(derive_task(declared, "blank"), "hflip")


def test_run_transform_option(db, data_root):
    runner = CliRunner()
    args = [
        "run",
        "-m",
        "prior-box",
        "-t",
        "phantom-anatomy-grounding",
        "--db",
        db,
        "--data-root",
        data_root,
        "--limit",
        2,
    ]
    result = runner.invoke(app, [str(a) for a in [*args, "--transform", "hflip", "--transform", "noise"]])
    assert result.exit_code == 0, result.output
    assert "phantom-anatomy-grounding@hflip" in result.output and "phantom-anatomy-grounding@noise" in result.output
    with Store(db, read_only=True) as store:
        tasks = {r["task"] for r in store.query("SELECT task FROM runs")}
    assert tasks == {"phantom-anatomy-grounding@hflip", "phantom-anatomy-grounding@noise"}
    result = runner.invoke(app, [str(a) for a in [*args, "--transform", "flip"]])
    assert result.exit_code == 2 and "unknown image transform 'flip'" in result.output
