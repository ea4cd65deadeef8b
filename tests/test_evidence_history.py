"""examples/evidence_history.py: plan version 1's committed reports re-analysed with paired t
and Holm (issue 24: resolved 3, 3 and 2 of 8 instead of 6, 4 and 2)."""

import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
try:
    import evidence_history as eh
finally:
    sys.path.remove(str(ROOT / "examples"))


def test_plan_v1_reports_under_paired_t_and_holm():
    got = eh.reanalyse(ROOT / "docs")
    assert sorted(got) == ["confirm", "cpu", "gpu"]
    verdicts = {p: {r["id"]: r["verdict"] for r in rows} for p, rows in got.items()}
    for p, rows in verdicts.items():
        assert sorted(rows) == [f"C{i}" for i in range(1, 9)], p  # every claim in N
    resolved = {p: sorted(c for c, v in rows.items() if v != "not resolved")
                for p, rows in verdicts.items()}
    assert resolved == {"cpu": ["C1", "C4", "C8"], "confirm": ["C1", "C2", "C8"], "gpu": ["C1", "C8"]}
    assert verdicts["cpu"]["C4"] == "refuted"
    # cpu's C2 (+0.37 pp, SE 0.13 pp, 10 seeds): t = 2.85 on 9 df, p 0.019 > 0.05 / 7 after C1, C8, C4.
    c2 = next(r for r in got["cpu"] if r["id"] == "C2")
    assert c2["df"] == 9 and c2["p"] == pytest.approx(0.0192, abs=5e-4)
    # gpu: the committed raw differences (48 fc seeds), not the rounded report.
    c1 = next(r for r in got["gpu"] if r["id"] == "C1")
    assert c1["n"] == 48 and len(c1["diffs"]) == 48 and c1["p_perm"] < 1e-3
    lines = eh.history_lines(ROOT / "docs")
    assert lines[0].startswith("plan v1, cpu profile, re-analysed: 2 of 8 claims reproduced, 1 refuted")
