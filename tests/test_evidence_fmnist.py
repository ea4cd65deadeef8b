"""The current plan's smoke run: `examples/evidence.py --smoke` end to end on small synthetic
Fashion-MNIST files (no apt, no download) and a small generated MNIST-1D, its run records and
the report's refusals."""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "evidence.py"
sys.path.insert(0, str(ROOT / "examples"))
try:
    import evidence_fmnist
    import evidence_fmnist_figure
    import evidence_plan
    import fashion_mnist
finally:
    sys.path.remove(str(ROOT / "examples"))

pytestmark = pytest.mark.skipif(shutil.which("git") is None or evidence_plan.plan_commit() is None,
                                reason="needs a git checkout with the plan committed")


def _fake_fashion_mnist(folder, n_train=600, n_test=300):
    rng = np.random.default_rng(0)
    for key, name in fashion_mnist.FILES.items():
        n = n_train if "train" in key else n_test
        arr = rng.integers(0, 256, (n, 28, 28)) if key.startswith("x") else np.arange(n) % 10
        fashion_mnist.write_idx(folder / f"{name}.gz", arr)


def _evidence(*args, env):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_stratified_subsets_are_paired_and_balanced():
    y = np.arange(1000) % 10
    a = evidence_fmnist.subset(y, 200, 5, "cnn")
    assert np.array_equal(a, evidence_fmnist.subset(y, 200, 5, "cnn"))  # same seed: same images
    assert np.bincount(y[a]).tolist() == [20] * 10 and len(set(a.tolist())) == 200
    assert not np.array_equal(a, evidence_fmnist.subset(y, 200, 6, "cnn"))
    assert sorted(evidence_fmnist.subset(y, 5000, 5, "fc").tolist()) == list(range(1000))


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="`make evidence` runs on TensorFlow; the smoke run takes ~25 s there and several "
    "times longer eagerly on JAX or torch, whose training paths the library tests cover",
)
def test_smoke_run_end_to_end(tmp_path):
    data, out = tmp_path / "fmnist", tmp_path / "out"
    data.mkdir()
    _fake_fashion_mnist(data)
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)
    proc = _evidence("--smoke", "--data-dir", str(data), "--out", str(out), "--jobs", "2",
                     "--backend", keras.backend.backend(), env=env)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    plan = evidence_plan.load_plan()
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"primary analysis: \d of 7 claims reproduced, \d refuted \(paired t, Holm\); "
                        rf"plan {plan['hash']}", last), last

    results = json.loads((out / "results.json").read_text())
    assert [c["id"] for c in results["claims"]] == [f"C{i}" for i in range(2, 9)]  # all in N
    assert all(c["n"] == 2 for c in results["claims"]) and results["missing"] == []
    assert [c["id"] for c in results["controls"]] == ["K1", "K2", "K3"]
    assert [c["id"] for c in results["supporting"]] == ["S1", "S2"]  # reported, not in N
    assert all(c["n"] == 2 and c["regime"] == "seq1d" for c in results["supporting"])
    gated = {c["id"]: c["gate_ok"] for c in results["claims"] if c["gate"]}
    assert set(gated) == {"C6", "C7", "C8"}
    assert results["meta"]["same_init"] is True and results["plan_hash"] == plan["hash"]
    shards = [[json.loads(line) for line in (out / f"runs.shard{i}.jsonl").read_text().splitlines()]
              for i in range(2)]
    first = plan["profiles"]["fmnist-smoke"]["first_seed"]
    assert [sorted({r["seed"] for r in rows}) for rows in shards] == [[first], [first + 1]]
    runs = shards[0] + shards[1]
    assert len(runs) == 2 * sum(len(g["arms"]) for g in plan["regimes"].values())
    head = evidence_plan.head_commit()[0]
    for r in runs:
        assert (r["plan_hash"], r["plan_version"], r["commit"], r["profile"]) == (
            plan["hash"], plan["version"], head, "fmnist-smoke")
    # The schedules ran: the ramp, the late and early cutoffs log their rates.
    logs = {(r["regime"], r["method"]): r["rate_logs"] for r in runs if r["seed"] == first}
    assert list(logs[("cnn", "dropblock")]) == ["dropout_rate"]
    assert list(logs[("seq1d", "probdropblock")]) == ["dropout_rate"]
    # The training loss is measured where a check or claim uses it: `none` (K4), underfit (C6).
    assert all(("train_loss" in r) == (r["method"] == "none" or r["regime"] == "underfit") for r in runs)
    assert list(logs[("resmlp", "sd_late")]) == ["drop_path_rate"]
    assert list(logs[("underfit", "early")]) == ["early_dropout_rate"]
    prefix = evidence_plan.report_prefix(plan, "fmnist-smoke")
    assert prefix == f"evidence_v{plan['version']}_fmnist_smoke"
    with gzip.open(out / f"{prefix}_runs.json.gz", "rt") as f:
        assert len(json.load(f)["runs"]) == len(runs)
    assert (out / f"{prefix}_effects.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / f"{prefix}.md").read_text()
    assert f"({prefix}_effects.png)" in md and "| S1 |" in md
    assert f"Plan `{plan['hash']}`" in md and md.strip().endswith(last)

    # The report rebuilds from the raw runs alone (no training, no runs folder).
    rebuilt = tmp_path / "rebuilt"
    proc = _evidence("--smoke", "--report-only", "--docs", str(out), "--out", str(rebuilt),
                     "--backend", keras.backend.backend(), env=env)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == last, proc.stderr[-2000:]
    assert json.loads((rebuilt / "results.json").read_text())["claims"] == results["claims"]

    # The README section: rebuilt from the raw runs, one column per profile, the last line.
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- evidence:start -->\nOLD\n<!-- evidence:end -->\ntail\n")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--readme-only", "--readme", str(readme),
                           "--docs", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = readme.read_text()
    assert "OLD" not in text and text.endswith("<!-- evidence:end -->\ntail\n")
    assert f"[fmnist-smoke](out/{prefix}.md) (replication)" in text
    assert len(re.findall(r"^\| C\d ", text, re.M)) == 7 and f"`{last}`" in text

    # A run made under another plan: the report refuses the whole folder.
    rows = (out / "runs.shard1.jsonl").read_text().splitlines()
    rows[0] = json.dumps(dict(json.loads(rows[0]), plan_hash="0123456789ab"))
    (out / "runs.shard1.jsonl").write_text("\n".join(rows) + "\n")
    proc = _evidence("--smoke", "--out", str(out), "--merge", "--backend", keras.backend.backend(),
                     env=env)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "refused: 1 run(s) not made under plan" in proc.stdout


def test_effects_figure_turns_each_row_to_the_papers_direction():
    _oriented = evidence_fmnist_figure._oriented
    acc = {"metric": "test_acc", "higher_is_better": True, "mean": 0.002, "ci": (-0.001, 0.005),
           "diffs": [0.001, 0.003]}
    loss = {"metric": "train_loss", "higher_is_better": False, "mean": -0.02, "ci": (-0.03, -0.01),
            "diffs": [-0.01, -0.03]}
    mean, lo, hi, diffs = _oriented(acc)
    np.testing.assert_allclose([mean, lo, hi, *diffs], [0.2, -0.1, 0.5, 0.1, 0.3])
    mean, lo, hi, diffs = _oriented(loss)  # lower is better: drawn as B - A, ends reordered
    np.testing.assert_allclose([mean, lo, hi, *diffs], [0.02, 0.01, 0.03, 0.01, 0.03])
