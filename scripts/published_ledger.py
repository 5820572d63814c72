"""Regenerate the bundled ledger of published results (published/*.csv) from its two sources.

- RadVLM-GRPO Tables 1-3: the wide transcription `radvlm-grpo-tables.csv` (one row per printed table row, one
  column per printed column; a trailing `*` marks the training-reward cell of Table 3), checked cell by cell
  against `images/results/*.png` of uzh-dqbm-cmi/RadVLM-GRPO at commit e297550.
- ReXrank's MIMIC-CXR and IU X-ray test tables: `results/table_mimiccxr.html` and `results/table_iuxray.html` of
  rajpurkarlab/ReXrank (read with `git show COMMIT:PATH` from a local clone), the `<tbody>` of the test split.

Usage: python scripts/published_ledger.py TRANSCRIPTION.csv REXRANK_GIT_DIR [OUT_DIR]
"""

from __future__ import annotations

import csv
import html
import re
import subprocess
import sys
from pathlib import Path

from evalkit.published import FIELDS, UNKNOWN

RADVLM = {
    "source": "radvlm-grpo",
    "citation": "Gundersen, Deperrois et al., RadVLM-GRPO (arXiv:2512.10691), Dec 2025 repository images",
    "repository": "uzh-dqbm-cmi/RadVLM-GRPO",
    "commit": "e297550",
}
RADVLM_TABLES = {
    "T1": ("Table 1", "images/results/report_generation_performance.png"),
    "T2": ("Table 2", "images/results/visual_grounding_performance.png"),
    "T3": ("Table 3", "images/results/report_generation_rewards_comparison.png"),
}
REPORT_TASK = "mimic-cxr-report-radvlm-filtered"
REPORT_DATASET = "RadVLM report-generation test set, derived from MIMIC-CXR (3,314 samples)"
# printed column -> (evalkit metric, scale as printed, printed header)
RADVLM_REPORT_COLUMNS = {
    "R-L": ("rouge_l", "x100", "R-L"),
    "B-S": ("bertscore", "x100", "B-S"),
    "CXb-micro": ("chexbert_micro_f1_14", "x100", "CXb-micro"),
    "CXb-macro": ("chexbert_macro_f1_14", "x100", "CXb-macro"),
    "RGF1": ("radgraph_f1_complete", "x100", "RGF1"),
    "GRN": ("green", "x100", "GRN"),
    "RCQ": ("radcliq_v1", "x1", "RCQ↓"),
    "ANC": ("response_chars", "x1", "ANC"),
}
RADVLM_GROUNDING_COLUMNS = {
    "Anatomy": ("imagenome-anatomy-grounding", "Chest ImaGenome test (anatomy grounding)", "Anatomy"),
    "Abnorm": ("vindr-abnormality-grounding", "VinDr-CXR (abnormality grounding)", "Abnorm."),
    "Phrase_MS": ("mscxr-phrase-grounding", "MS-CXR (phrase grounding)", "Phrase_MS"),
    "Phrase_Pad": ("padchest-phrase-grounding", "PadChest-GR (phrase grounding)", "Phrase_Pad"),
}
COLUMN_NOTES = {
    "RGF1": "level inferred from Table 3's starred +RGF1-C row (docs/reproducing-radvlm-grpo.md)",
    "CXb-micro": "14-label set inferred from the magnitudes (docs/reproducing-radvlm-grpo.md)",
    "CXb-macro": "14-label set inferred from the magnitudes (docs/reproducing-radvlm-grpo.md)",
    "RCQ": "raw RadCliQ-v1, lower is better",
    "ANC": "average number of characters of the answer",
}

REXRANK = {
    "source": "rexrank",
    "citation": "Zhang et al., ReXrank leaderboard (arXiv:2411.15122)",
    "repository": "rajpurkarlab/ReXrank",
}
REXRANK_TABLES = {
    "results/table_mimiccxr.html": (
        "MIMIC-CXR test",
        "testResults",
        UNKNOWN,  # ReXrank's MIMIC-CXR test set is no evalkit task
        "ReXrank MIMIC-CXR test (official split)",
        "",
    ),
    "results/table_iuxray.html": (
        "IU X-ray test",
        "testResultsIU",
        "iu-xray-report-rexrank",
        "ReXrank IU X-ray test (R2Gen split, ReXRank_IUXray_test.json)",
        "590",
    ),
}
# ReXrank header -> (evalkit metric or unknown, note). Its numbers come from CXR-Report-Metric's code path
# (per-report scores averaged), which the `rexrank` profile reproduces (tests/parity/test_cxr_report_metric_parity.py).
REXRANK_COLUMNS = {
    "BLEU": ("bleu2_cxr", "CXR-Report-Metric run_eval.py: BLEU-2 per report (fast_bleu, lower-cased), averaged"),
    "BertScore": ("bertscore_cxr", "CXR-Report-Metric 9c9ecad: distilroberta-base, rescaled, idf off"),
    "SembScore": ("semb_score", "cosine of CheXbert [CLS] embeddings (CXR-Report-Metric encode.py)"),
    "RadGraph": ("radgraph_combined", "CXR-Report-Metric: mean of RadGraph entity F1 and relation F1"),
    "RadCliQ-v0": ("unknown", "RadCliQ-v0: not in evalkit"),
    "RadCliQ-v1": ("radcliq_v1", "raw RadCliQ-v1, lower is better"),
    "FineRadScore": ("unknown", "FineRadScore (LLM judge): not in evalkit"),
}


def radvlm_rows(transcription: Path) -> list[dict[str, str]]:
    rows = []
    with transcription.open(newline="") as f:
        for line in csv.DictReader(f):
            table, file = RADVLM_TABLES[line["table"]]
            base = {**RADVLM, "table": table, "file": file, "model": line["model"]}
            if line["table"] == "T2":
                for column, (task, dataset, header) in RADVLM_GROUNDING_COLUMNS.items():
                    rows.append(_row(base, task, dataset, "", header, line[column], "radvlm_map50", "x100", ""))
                continue
            if line["size_b"]:  # Table 1's model size: a printed cell, not a result (metric unknown)
                rows.append(_row(base, REPORT_TASK, REPORT_DATASET, "3314", "Size (B)", line["size_b"], UNKNOWN, "x1",
                                 "model size in billions of parameters, not a result"))  # fmt: skip
            for column, (metric, scale, header) in RADVLM_REPORT_COLUMNS.items():
                printed = line[column]
                if not printed:
                    continue
                rows.append(
                    _row(base, REPORT_TASK, REPORT_DATASET, "3314", header, printed, metric, scale,
                         COLUMN_NOTES.get(column, ""))
                )  # fmt: skip
    return rows


def rexrank_rows(git_dir: Path) -> list[dict[str, str]]:
    rows = []
    for path, (table, body_id, task, dataset, n) in REXRANK_TABLES.items():
        commit = _git(git_dir, "log", "-1", "--format=%h", "--", path).strip()
        text = _git(git_dir, "show", f"{commit}:{path}")
        found = re.search(rf'<tbody id="{body_id}"[^>]*>(.*?)</tbody>', text, re.S)
        head = text[: found.start()].rsplit("<thead>", 1)[1]  # the table's own header, before its body
        headers = [html.unescape(re.sub(r"<[^>]+>", "", h)).replace("↓", "").replace("↑", "").strip()
                   for h in re.findall(r"<th>(.*?)</th>", head)]  # fmt: skip
        body = found.group(1)
        for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
            model = re.search(r'<a class="link"[^>]*>(.*?)</a>', tr).group(1).strip()
            cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            base = {**REXRANK, "commit": commit, "table": table, "file": path, "model": model}
            for header, printed in zip(headers[2:], cells[2:], strict=True):
                metric, note = REXRANK_COLUMNS[header]
                rows.append(_row(base, task, dataset, n, header, printed, metric, "x1", note, "rexrank"))
    return rows


def _row(base, task, dataset, n, column, printed, metric, scale, note, convention="radvlm-grpo") -> dict[str, str]:
    starred = printed.endswith("*")
    value = printed.rstrip("*")
    return {
        **base,
        "task": task,
        "dataset": dataset,
        "n": n,
        "column": column,
        "printed": printed,
        "value": value,
        "scale": scale,
        "metric": metric,
        "convention": convention,
        "training_reward": "yes" if starred else "no",
        "note": note,
    }


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True, text=True).stdout


def write(rows: list[dict[str, str]], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    out = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(__file__).resolve().parents[1] / "published"
    write(radvlm_rows(Path(sys.argv[1])), out / "radvlm-grpo.csv")
    write(rexrank_rows(Path(sys.argv[2])), out / "rexrank.csv")
