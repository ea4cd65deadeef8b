"""Plan version 1's published results (docs/evidence.md, evidence_confirm.md, evidence_gpu.md)
re-analysed with plan version 2's test: paired t (n - 1 df) and Holm across the 8 claims.

History, not evidence under plan version 2: v1's claims are not all faithful to the papers
(docs/evidence_plan.md says which and why). The gpu profile's raw per-seed differences are
committed (docs/evidence_gpu_results.json.gz); for cpu and confirm only the reports are,
so their t statistics come from the printed mean and SE (two significant digits).

Example:

>>> print("\n".join(history_lines("docs")))               # doctest: +SKIP
"""

import gzip
import json
import os
import re

import evidence_stats as es
from evidence_report import REPORTS, report_summary

_SEEDS = {"overfit": "overfitting", "occlusion": "overfitting", "underfit": "underfitting",
          "fc": "fully connected"}


def _number(cell):
    """'+0.91 pp' -> 0.0091; '-0.0001' -> -0.0001."""
    value = float(cell.replace("pp", "").strip())
    return value / 100 if "pp" in cell else value


def _seeds(text):
    seeds = {}
    for line in text.splitlines():
        for regime, label in _SEEDS.items():
            if line.startswith(f"| {label}"):
                seeds[regime] = int(line.strip().strip("|").split("|")[-1])
    return seeds


def reanalyse(docs="docs", alpha=0.05):
    """{profile: judged rows} for each of plan version 1's reports found in `docs`."""
    out = {}
    for name in REPORTS:
        path = os.path.join(docs, name)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            text = f.read()
        summary, seeds = report_summary(text), _seeds(text)
        raw = os.path.join(docs, name.replace(".md", "_results.json.gz"))
        exact = {}
        if os.path.exists(raw):
            with gzip.open(raw, "rt") as f:
                exact = {c["id"]: c["diffs"] for c in json.load(f)["claims"]}
        rows, tests = [], []
        for cid, c in summary["claims"].items():
            hib = not re.search(r"loss", c["claim"])
            diffs = exact.get(cid, [])
            rows.append({"id": cid, "claim": c["claim"], "regime": c["regime"], "diffs": diffs,
                         "higher_is_better": hib})
            tests.append(es.paired_t(diffs) if diffs else
                         es.t_from_summary(_number(c["diff"]), _number(c["se"]), seeds[c["regime"]]))
        out[summary["profile"]] = es.judge(rows, alpha, tests)
    return out


def history_lines(docs="docs"):
    """One line per plan version 1 profile: its re-analysed counts and verdicts."""
    lines = []
    for profile, rows in reanalyse(docs).items():
        k = sum(r["verdict"] == es.REPRODUCED for r in rows)
        f = sum(r["verdict"] == es.REFUTED for r in rows)
        detail = ", ".join(f"{r['id']} {r['verdict']} (p {r['p']:.2g}, Holm {r['p_holm']:.2g})"
                           for r in rows)
        lines.append(f"plan v1, {profile} profile, re-analysed: {k} of {len(rows)} claims "
                     f"reproduced, {f} refuted (paired t, Holm): {detail}")
    return lines
