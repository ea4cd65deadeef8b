"""Smoke test: `examples/evidence.py --profile smoke` runs end to end on the current backend."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "evidence.py"


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="`make evidence` runs on TensorFlow (fastest for its small CNNs on CPU); the other "
    "backends' training paths are covered by the library tests and the other examples",
)
def test_evidence_smoke(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)  # one host device, like a user's run
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--profile", "smoke", "--out", str(out),
         "--backend", keras.backend.backend(), "--jobs", "2"],  # as `make evidence` runs it
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"resolved \d+ of 8 claims \(\d+ reproduced, \d+ refuted\)", last), last

    results = json.loads((out / "results.json").read_text())
    assert len(results["claims"]) == 8
    assert {r["regime"] for r in results["runs"]} == {"overfit", "underfit", "fc"}
    assert {c["regime"] for c in results["claims"]} == {"overfit", "underfit", "fc"}
    assert results["meta"]["same_init"] is True
    # Two shards, seeds split between them, every (regime, method, seed) run exactly once.
    assert results["meta"]["jobs"] == 2
    keys = [(r["regime"], r["method"], r["seed"]) for r in results["runs"]]
    assert len(keys) == len(set(keys)) == 2 * 7 + 2 * 2 + 2 * 4
    shards = [[json.loads(line) for line in (out / f"runs.shard{i}.jsonl").read_text().splitlines()]
              for i in range(2)]
    assert [sorted({r["seed"] for r in rows}) for rows in shards] == [[0], [1]]
    md = (out / "evidence_smoke.md").read_text()
    assert "| # | claim (paper) |" in md and "resolved" in md
    for name in ("claims", "overfit", "occlusion", "equal_fraction", "underfit", "fc"):
        assert (out / f"evidence_smoke_{name}.png").stat().st_size > 10_000

    # The README generator: a summary table between the markers, links to the full report.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "evidence.md").write_text(md.replace("](evidence_smoke_", "](evidence_"))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- evidence:start -->\nOLD\n<!-- evidence:end -->\ntail\n")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--readme-only", "--readme", str(readme), "--docs", str(docs)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = readme.read_text()
    assert "OLD" not in text and "| [smoke](docs/evidence.md) |" in text
    assert len(re.findall(r"^\| C\d \w", text, re.M)) == 8
    assert "| method | clean |" not in text and "evidence_claims.png" not in text  # summary only
    assert text.endswith("<!-- evidence:end -->\ntail\n")


def _report():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import evidence_report
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return evidence_report


def test_readme_summary_of_the_committed_reports():
    """Plan version 1's summary of docs/evidence*.md: one row per claim, one column per
    report (linked), bold where beyond 2 SE. The README shows the current plan's section
    (built from its raw runs), which links these reports; it is in sync with it."""
    report = _report()
    section = report.readme_section(ROOT / "docs", "docs")
    header = next(line for line in section.splitlines() if line.startswith("| claim |"))
    assert header == ("| claim | regime | [cpu](docs/evidence.md) | [confirm](docs/evidence_confirm.md) "
                      "| [gpu](docs/evidence_gpu.md) |")
    rows = {line.split()[1]: line for line in section.splitlines() if re.match(r"\| C\d ", line)}
    assert sorted(rows) == [f"C{i}" for i in range(1, 9)]
    # Reproduced: bold; refuted: bold and marked; not resolved: plain (docs/evidence.md's C1, C4, C6).
    assert "| **+0.91 pp ± 0.13 pp** |" in rows["C1"]
    assert "| **-0.29 pp ± 0.06 pp** (refuted) |" in rows["C4"]
    assert "| -0.0001 ± 0.0015 |" in rows["C6"]
    assert "| resolved | | 6 of 8 (5 reproduced, 1 refuted) |" in section
    readme = (ROOT / "README.md").read_text()
    current = report.current_section(str(ROOT / "docs"), "docs")
    assert "| [fmnist-cpu](docs/evidence_v3_fmnist_cpu.md) (primary) |" in current
    assert "Plan version 2 ([docs/evidence_fmnist_cpu.md](docs/evidence_fmnist_cpu.md))" in current
    assert "| S1 ProbDropBlock1D" in current and "| S2 DropBlock1D" in current
    assert "[cpu](docs/evidence.md), [confirm](docs/evidence_confirm.md), [gpu](docs/evidence_gpu.md)" in current
    assert report.replace_section(readme, current) == readme, (
        "README's evidence section is out of date: run `python examples/evidence.py --readme-only`")


def test_report_summary_rejects_other_text():
    with pytest.raises(ValueError, match="not a report"):
        _report().report_summary("# some page\n| C1 | x |\n")


def test_regime_fingerprints_keep_other_regimes_runs():
    """`--resume` keeps a regime's runs when only another regime's settings change."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import evidence
    finally:
        sys.path.remove(str(SCRIPT.parent))
    cfg = dict(evidence.PROFILES["cpu"])
    fp = {g: evidence.regime_fingerprint("cpu", "tensorflow", cfg, g) for g in evidence.REGIMES}
    assert len(set(fp.values())) == len(evidence.REGIMES)
    changed = dict(cfg, fc_epochs=cfg["fc_epochs"] + 1)
    after = {g: evidence.regime_fingerprint("cpu", "tensorflow", changed, g) for g in evidence.REGIMES}
    assert after["overfit"] == fp["overfit"] and after["underfit"] == fp["underfit"]
    assert after["fc"] != fp["fc"]
    # The fc regime trains on the overfitting regime's images: their count is part of it.
    changed = dict(cfg, over_train=cfg["over_train"] + 1)
    after = {g: evidence.regime_fingerprint("cpu", "tensorflow", changed, g) for g in evidence.REGIMES}
    assert after["fc"] != fp["fc"] and after["overfit"] != fp["overfit"]
    assert after["underfit"] == fp["underfit"]
    assert evidence.regime_fingerprint("confirm", "tensorflow", cfg, "fc") != fp["fc"]
