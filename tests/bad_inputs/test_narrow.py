"""An 80-column terminal: reference tables show their numbers, compare/gate tables keep deltas whole."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from evalkit.cli._tables import fitting, split_by_width


def _render(table: Table, width: int = 80) -> str:
    console = Console(width=width, record=True, force_terminal=False)
    console.print(table)
    return console.export_text()


def test_a_long_reference_label_leaves_room_for_the_numbers():
    label = "radiologist (reference: inter-reader agreement on the VinDr-CXR training split)"
    console = Console(width=80)
    tables = split_by_width(
        console,
        "vindr-reader-agreement",
        ("model", ["radvlm", label]),
        [(f"m{i} ↑", ["0.4123 [0.300, 0.500]", "0.3877 [0.301, 0.466]"]) for i in range(3)],
    )
    text = "".join(_render(t) for t in tables)
    assert text.count("0.3877 [0.301, 0.466]") == 3 and text.count("0.4123 [0.300, 0.500]") == 3
    assert "VinDr-CXR" in text and "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_a_wide_statistics_table_is_split_not_cut():
    table = Table(title="gate t: candidate a vs baseline b")
    headers = ["metric", "n", "baseline", "candidate", "Δ", "regression bounds", "margin", "p adj", "power", "verdict"]
    for h in headers:
        table.add_column(h, no_wrap=True, justify="left" if h in ("metric", "verdict") else "right")
    table.add_row(
        "soft_f1_iou ↑", "16", "0.8436", "0.1210", "-0.7226", "[0.6307, 0.7982]", "0.0500", "0.0348", "3%", "regression"
    )
    parts = fitting(table, 80)
    assert len(parts) > 1 and all(p.columns[0].header == "metric" for p in parts)
    text = "".join(_render(p) for p in parts)
    for cell in ("-0.7226", "[0.6307, 0.7982]", "0.0348", "regression"):
        assert cell in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert fitting(table, 200) == [table]  # wide enough: unchanged
