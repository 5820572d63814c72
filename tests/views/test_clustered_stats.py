"""Resampling the unit the data set drew: cluster bootstrap and permutations, coverage, --cluster, the store."""

from __future__ import annotations

import json
import re

import duckdb
import numpy as np
import pytest
from helpers.clustered import cluster_keys, planted, write_runs
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.metrics import get_metric
from evalkit.stats import (
    Clustering,
    Resampler,
    bootstrap_distribution,
    cluster_counts,
    cluster_swaps,
    percentile_interval,
    permutation_distribution,
)
from evalkit.store import Store

TASK = "phantom-anatomy-grounding"  # a registered task whose metric `miou` is a plain mean


def test_iid_counts_are_the_plain_bootstrap_and_cluster_counts_take_whole_clusters():
    plain = np.random.default_rng(7).integers(0, 12, size=(50, 12))
    plain += (np.arange(50) * 12)[:, None]
    expected = np.bincount(plain.ravel(), minlength=600).reshape(50, 12)
    np.testing.assert_array_equal(cluster_counts(np.random.default_rng(7), 12, 50), expected)

    groups = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 3])
    counts = cluster_counts(np.random.default_rng(1), 10, 400, groups)
    assert counts.shape == (400, 10) and counts.dtype == float
    for g in range(4):
        members = counts[:, groups == g]
        assert (members == members[:, :1]).all()  # a cluster is drawn whole
    per_cluster = counts[:, [0, 3, 4, 6]]
    assert (per_cluster.sum(axis=1) == 4).all()  # G draws of G clusters
    swaps = cluster_swaps(np.random.default_rng(2), 10, 400, groups)
    assert set(np.unique(swaps)) <= {0.0, 1.0}
    for g in range(4):
        members = swaps[:, groups == g]
        assert (members == members[:, :1]).all()
    assert 0.4 < swaps[:, 0].mean() < 0.6


def test_clustering_groups_and_labels():
    ids = ["a", "b", "c", "d"]
    assert Clustering().groups(ids) is None
    assert Clustering("image", {"a": "i1", "b": "i2", "c": "i3", "d": "i4"}).groups(ids) is None  # all singletons
    grouped = Clustering("image", {"a": "i1", "b": "i1", "c": "i2"})  # d has no key: its own cluster
    codes = grouped.groups(ids)
    assert codes is not None and codes[0] == codes[1] and len(set(codes.tolist())) == 3
    assert grouped.describe(ids) == "by image (3 clusters)" and Clustering().describe(ids) == "by sample (iid)"


def _coverage(n_sims: int, n_clusters: int, size: int, icc: float, groups: np.ndarray | None) -> float:
    metric, covered = get_metric("miou"), 0
    for sim in range(n_sims):
        values = planted(np.random.default_rng(sim), n_clusters, size, icc)
        reps = bootstrap_distribution([Resampler(metric, values.tolist(), [{}] * values.size)], 400, sim, None, groups)
        low, high = percentile_interval(reps[0])
        covered += low <= 0.5 <= high
    return covered / n_sims


@pytest.mark.slow
def test_cluster_bootstrap_covers_at_the_nominal_rate_and_iid_does_not():
    # 150 clusters of 4 samples, ICC 0.5: design effect 1 + (4 - 1) * 0.5 = 2.5, so the iid interval is sqrt(2.5)
    # times too narrow and covers about 2 * Phi(1.96 / sqrt(2.5)) - 1 = 78.5%. 1,000 data sets: the binomial SD of
    # a 95% coverage estimate is 0.7 points, so 93-97% is about +-3 SD. Seeded: measured 94.6% and 76.0%.
    n_clusters, size, icc, sims = 150, 4, 0.5, 1000
    groups = np.repeat(np.arange(n_clusters), size)
    clustered = _coverage(sims, n_clusters, size, icc, groups)
    iid = _coverage(sims, n_clusters, size, icc, None)
    assert 0.93 <= clustered <= 0.97, clustered
    assert iid < 0.85, iid


def test_clustered_permutation_null_is_calibrated_where_iid_is_not():
    # Two models equal in distribution, with a shared per-cluster difference: swapping per sample understates the
    # null spread, so its p-values pile up near 0; swapping per cluster keeps them roughly uniform.
    metric, n_clusters, size = get_metric("miou"), 40, 6
    groups = np.repeat(np.arange(n_clusters), size)
    rejected = {"cluster": 0, "iid": 0}
    for sim in range(150):
        rng = np.random.default_rng(1000 + sim)
        a = planted(rng, n_clusters, size, 0.6)
        b = planted(rng, n_clusters, size, 0.6)
        pair = (Resampler(metric, a.tolist(), [{}] * a.size), Resampler(metric, b.tolist(), [{}] * b.size))
        observed = a.mean() - b.mean()
        for name, codes in (("cluster", groups), ("iid", None)):
            perms = permutation_distribution([pair], 400, sim, codes)[0]
            p = (1 + (np.abs(perms) >= abs(observed) - 1e-12).sum()) / 401
            rejected[name] += p < 0.05
    assert rejected["cluster"] / 150 <= 0.10, rejected
    assert rejected["iid"] / 150 >= 0.20, rejected


def test_vectorised_and_generic_paths_agree_under_cluster_counts():
    from helpers.metrics import MicroF1, SlowMicroF1, _f1_stats

    stats = _f1_stats(np.random.default_rng(4), 90)
    groups = np.repeat(np.arange(30), 3)
    quick, generic = Resampler(MicroF1(), [None] * 90, stats), Resampler(SlowMicroF1(), [None] * 90, stats)
    a, b = bootstrap_distribution([quick, generic], 200, 3, None, groups)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    other = _f1_stats(np.random.default_rng(5), 90)
    fast = permutation_distribution([(quick, Resampler(MicroF1(), [None] * 90, other))], 150, 6, groups)[0]
    slow = permutation_distribution([(generic, Resampler(SlowMicroF1(), [None] * 90, other))], 150, 6, groups)[0]
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-14)


# --- on a stored task, through the CLI --------------------------------------------------------------------------
def _ci_widths(output: str, model: str) -> float:
    line = next(row for row in output.splitlines() if f" {model} " in row)
    low, high = map(float, re.search(r"\[(-?[\d.]+), (-?[\d.]+)\]", line).groups())
    return high - low


def test_printed_interval_is_wider_by_the_square_root_of_the_design_effect(db):
    n_clusters, size, icc = 150, 4, 0.6
    values = planted(np.random.default_rng(11), n_clusters, size, icc)
    write_runs(db, TASK, {"model-a": values}, cluster_keys(n_clusters, size))
    runner = CliRunner()
    args = ["leaderboard", "--db", str(db), "--task", TASK]
    clustered = runner.invoke(app, args)
    iid = runner.invoke(app, [*args, "--cluster", "none"])
    assert clustered.exit_code == 0 and iid.exit_code == 0, clustered.output + iid.output
    assert f"resampled by image ({n_clusters} clusters)" in clustered.output
    assert "resampled by sample (iid)" in iid.output
    # The design effect of this sample: variance of the mean of cluster means over the iid variance of the mean.
    means = values.reshape(n_clusters, size).mean(axis=1)
    deff = (means.var(ddof=1) / n_clusters) / (values.var(ddof=1) / values.size)
    assert 2.2 < deff < 3.6  # planted: 1 + (4 - 1) * 0.6 = 2.8
    ratio = _ci_widths(clustered.output, "model-a") / _ci_widths(iid.output, "model-a")
    assert ratio == pytest.approx(np.sqrt(deff), rel=0.1)


def test_compare_names_the_unit_and_cluster_override_errors_name_the_known_units(db):
    rng = np.random.default_rng(12)
    a, b = planted(rng, 30, 3, 0.5), planted(rng, 30, 3, 0.5)
    write_runs(db, TASK, {"a": a, "b": b}, cluster_keys(30, 3))
    runner = CliRunner()
    base = ["compare", "--db", str(db), "--task", TASK, "-m", "a", "-m", "b", "--n-boot", "200", "--n-perm", "200"]
    shown = runner.invoke(app, base)
    assert shown.exit_code == 0, shown.output
    assert "by image (30 clusters)" in shown.output
    data = json.loads(runner.invoke(app, [*base, "--json"]).output)
    assert data["metrics"][0]["unit"] == "image" and data["metrics"][0]["n_clusters"] == 30
    missing = runner.invoke(app, [*base, "--cluster", "patient"])
    assert missing.exit_code == 2 and "'patient'" in missing.output and "--cluster image | none" in missing.output
    bad = runner.invoke(app, [*base, "--cluster", "ward"])
    assert bad.exit_code == 2 and "ward" in bad.output


def test_old_results_files_get_the_cluster_columns_and_read_as_iid(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE samples (task VARCHAR, sample_id VARCHAR, image_paths VARCHAR, prompt_vars VARCHAR, "
        "reference_text VARCHAR, reference_boxes VARCHAR, reference_labels VARCHAR, meta VARCHAR, "
        "PRIMARY KEY (task, sample_id))"
    )
    con.execute("INSERT INTO samples VALUES ('t', 's1', '[]', '{}', NULL, '[]', '[]', '{}')")
    con.close()
    with Store(path, read_only=True) as store:  # the first open migrates: the columns are added, old rows keep NULL
        assert store.has_column("samples", "cluster") and store.sample_units("t") == {"s1": ("", {})}
    with Store(path) as store:
        assert store.has_column("samples", "cluster") and store.has_column("samples", "units")
        assert store.sample_units("t") == {"s1": ("", {})}
        store.put_samples([["t", "s2", "[]", "{}", None, "[]", "[]", "{}", "image:x", '{"image": "image:x"}']])
        assert store.sample_units("t")["s2"] == ("image:x", {"image": "image:x"})


def test_phantom_samples_of_one_image_share_their_cluster_and_runs_store_it(data_root, db):
    from evalkit.registry import resolve_tasks
    from evalkit.run.evaluate import evaluate
    from evalkit.run.runner import load_samples

    spec = resolve_tasks("phantom-phrase-grounding")[0]
    samples = load_samples(spec, data_root, split="test")
    by_image: dict[str, set[str]] = {}
    for s in samples:
        by_image.setdefault(s.image_paths[0], set()).add(s.cluster)
        assert s.cluster == s.units["image"] and s.cluster.startswith("image:")
    assert all(len(keys) == 1 for keys in by_image.values())
    assert len(by_image) < len(samples)  # several regions per image: clusters are real here
    with Store(db) as store:
        evaluate("whole-image", spec, db=store, data_root=data_root, limit=12)
        stored = store.sample_units(spec.name)
    assert stored and all(key.startswith("image:") and units == {"image": key} for key, units in stored.values())


# --- every loader records its unit --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_layouts(data_root, tmp_path_factory):
    from evalkit.data.grounding_layouts import write_grounding_layouts
    from evalkit.data.phantom import write_mimic_cxr_layout

    root = write_grounding_layouts(data_root / "phantom", tmp_path_factory.mktemp("layouts"))
    write_mimic_cxr_layout(data_root / "phantom", root / "mimic-cxr-jpg")
    return root


@pytest.mark.parametrize(
    ("loader", "folder", "unit", "id_field"),
    [
        ("mimic_cxr", "mimic-cxr-jpg", "patient", "subject_id"),
        ("imagenome", "imagenome", "patient", "subject_id"),
        ("ms_cxr", "ms_cxr", "patient", "subject_id"),
        ("padchest_gr", "padchest_gr", "patient", None),
        ("vindr_cxr", "vindr_cxr", "image", "image_id"),
    ],
)
def test_loaders_record_the_coarsest_unit_their_data_set_has(real_layouts, loader, folder, unit, id_field):
    from evalkit.config import DatasetSpec
    from evalkit.data import get_loader

    samples = get_loader(loader)(DatasetSpec(loader=loader), real_layouts / folder, "t", "test")
    assert samples
    for s in samples:
        assert s.cluster == s.units[unit] and s.cluster.startswith(f"{unit}:")
        assert set(s.units) <= {"image", "study", "patient"} and "image" in s.units
        if id_field:
            assert s.cluster == f"{unit}:{s.meta[id_field]}"
    if loader != "vindr_cxr":
        assert all("study" in s.units for s in samples)
    # A patient/image holds several samples in these layouts, so the clusters are coarser than the samples.
    if loader in ("imagenome", "vindr_cxr", "padchest_gr"):
        assert len({s.cluster for s in samples}) < len(samples)
