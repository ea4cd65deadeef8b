"""examples/evidence_plan.py: the plan's hash, and the report's refusal of runs made under
another plan or at a commit that does not descend from the plan's commit."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
try:
    import evidence_plan as ep
finally:
    sys.path.remove(str(ROOT / "examples"))

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def test_the_committed_plans():
    plans = {v: ep.load_plan(path) for v, path in ep.PLAN_PATHS.items()}
    assert ep.load_plan()["hash"] == plans[ep.CURRENT_VERSION]["hash"] == ep.plan_hash()
    for version, plan in plans.items():
        assert plan["version"] == version and plan["primary_profile"] in plan["profiles"]
        assert [c["id"] for c in plan["claims"]] == [f"C{i}" for i in range(2, 9)]
        assert {c["gate"] for c in plan["claims"]} - {None} <= {k["id"] for k in plan["controls"]}
        assert len(plan["hash"]) == 12
    # A new version keeps the claims: the same comparisons, metrics, directions and gates.
    keys = ("id", "regime", "a", "b", "metric", "higher_is_better", "gate")
    assert [[{k: c[k] for k in keys} for c in p["claims"]] for p in plans.values()].count(
        [{k: c[k] for k in keys} for c in plans[2]["claims"]]) == len(plans)
    # Each version is its own file, with its own reports and raw runs.
    assert ep.report_prefix(plans[2], "fmnist-cpu") == "evidence_fmnist_cpu"
    assert ep.report_prefix(plans[3], "fmnist-cpu") == "evidence_v3_fmnist_cpu"
    assert plans[3]["supporting"] and all(s["regime"] == "seq1d" for s in plans[3]["supporting"])


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo), "PATH": "/usr/bin:/bin"})
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "x.txt").write_text("before\n")
    _git(tmp_path, "add", "x.txt")
    before = _git(tmp_path, "commit", "-qm", "before the plan")
    (tmp_path / "docs").mkdir()
    shutil.copy(ep.PLAN_PATH, tmp_path / "docs" / "evidence_plan.md")
    _git(tmp_path, "add", "docs")
    planned = _git(tmp_path, "commit", "-qm", "plan")
    (tmp_path / "x.txt").write_text("after\n")
    after = _git(tmp_path, "commit", "-qam", "after the plan")
    return tmp_path, before, planned, after


def _run(plan, commit, seed=0, **kw):
    return ep.stamp({"regime": "fc", "method": "none", "seed": seed, **kw}, plan, commit, True)


def test_runs_at_or_after_the_plan_commit_pass(repo):
    root, before, planned, after = repo
    plan = ep.load_plan(root / "docs" / "evidence_plan.md")
    assert ep.start_check(plan, root) == planned
    assert ep.check_runs([_run(plan, planned), _run(plan, after, 1)], plan, root) == planned
    assert ep.head_commit(root) == (after, True)


def test_runs_before_the_plan_or_under_another_plan_are_refused(repo):
    root, before, planned, after = repo
    plan = ep.load_plan(root / "docs" / "evidence_plan.md")
    with pytest.raises(ep.PlanError, match="does not descend from the plan"):
        ep.check_runs([_run(plan, after), _run(plan, before, 1)], plan, root)
    other = dict(plan, hash="0123456789ab")
    with pytest.raises(ep.PlanError, match="plan 0123456789ab, not"):
        ep.check_runs([_run(other, after)], plan, root)
    with pytest.raises(ep.PlanError, match="no commit recorded"):
        ep.check_runs([_run(plan, None)], plan, root)
    with pytest.raises(ep.PlanError, match="cannot compare"):
        ep.check_runs([_run(plan, "f" * 40)], plan, root)


def test_an_uncommitted_plan_change_refuses_to_start(repo):
    root, *_ = repo
    path = root / "docs" / "evidence_plan.md"
    path.write_text(path.read_text().replace("30 minutes on 2 cores", "31 minutes on 2 cores"))
    plan = ep.load_plan(path)
    assert plan["hash"] != ep.plan_hash(ep.PLAN_PATH)
    with pytest.raises(ep.PlanError, match="new plan version"):
        ep.start_check(plan, root)


def test_a_plan_whose_claims_name_missing_arms_is_rejected(tmp_path):
    text = ep.PLAN_PATH.read_text().replace('"a": "sd_late"', '"a": "sd_later"')
    (tmp_path / "plan.md").write_text(text)
    with pytest.raises(ep.PlanError, match="C8 compares sd_later"):
        ep.load_plan(tmp_path / "plan.md")
