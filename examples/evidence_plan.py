"""The pre-declared evidence plans: their content, hash and commit, and the checks that keep
runs and plan together.

Each plan version is its own file, never edited after its first run: version 2 is
docs/evidence_plan.md, version 3 (the current one, `make evidence`) docs/evidence_plan_v3.md.
A new version is a new file, with the reason for the change written in it; the runs of an
older version stay reported under their own plan.

- `load_plan(path)`: the `json plan` block of the plan file (default: the current version),
  plus its `hash` (SHA-256 of the file's bytes, first 12 hex digits) and `path`.
- `report_prefix(plan, profile)`: the file prefix of a profile's report and raw runs in docs/.
- `plan_commit(path)`: the commit that last changed the plan file; `start_check(plan)`
  refuses to start runs while the plan file differs from that commit's copy.
- `stamp(record, plan, commit)`: what every run record carries (plan hash and version, the
  commit it ran at, whether the work tree was clean).
- `check_runs(runs, plan, root)`: the report's refusal: every run made under this plan's hash,
  at a commit that descends from the plan's commit (`git merge-base --is-ancestor`).

Example:

>>> plan = load_plan()                                      # doctest: +SKIP
>>> check_runs(runs, plan)                                   # doctest: +SKIP
"""

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAN_PATHS = {2: ROOT / "docs" / "evidence_plan.md", 3: ROOT / "docs" / "evidence_plan_v3.md"}
CURRENT_VERSION = 3
PLAN_PATH = PLAN_PATHS[CURRENT_VERSION]
_BLOCK = re.compile(r"^```json plan\n(.*?)^```", re.S | re.M)


class PlanError(ValueError):
    """Runs, plan and commits do not belong together."""


def plan_hash(path=PLAN_PATH):
    """SHA-256 of the plan file's bytes, first 12 hex digits."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def load_plan(path=PLAN_PATH):
    """The plan's `json plan` block as a dict, with `hash` and `path` added."""
    text = Path(path).read_text()
    blocks = _BLOCK.findall(text)
    if len(blocks) != 1:
        raise PlanError(f"{path}: expected one ```json plan block, found {len(blocks)}")
    plan = json.loads(blocks[0])
    rows = plan["claims"] + plan.get("controls", []) + plan.get("supporting", [])
    ids = [c["id"] for c in rows]
    if len(ids) != len(set(ids)):
        raise PlanError(f"{path}: claim, control and supporting ids must be unique, got {ids}")
    for c in rows:
        arms = plan["regimes"].get(c["regime"], {}).get("arms", ())
        if c["a"] not in arms or c["b"] not in arms:
            raise PlanError(f"{path}: {c['id']} compares {c['a']} with {c['b']}, but regime "
                            f"{c['regime']!r} has arms {list(arms)}")
    plan["hash"] = plan_hash(path)
    plan["path"] = str(path)
    return plan


def report_prefix(plan, profile):
    """`evidence_<profile>` for plan version 2 (its files predate versioned names),
    `evidence_v<version>_<profile>` from version 3 on; dashes become underscores."""
    tag = "" if plan["version"] <= 2 else f"v{plan['version']}_"
    return f"evidence_{tag}{profile.replace('-', '_')}"


def _git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def head_commit(root=ROOT):
    """(commit, clean) of the work tree at `root`; (None, False) outside git."""
    head = _git(root, "rev-parse", "HEAD")
    if head.returncode:
        return None, False
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return head.stdout.strip(), status.returncode == 0 and not status.stdout.strip()


def plan_commit(path=PLAN_PATH, root=ROOT):
    """The commit that last changed the plan file, or None if it was never committed."""
    rel = os.path.relpath(Path(path).resolve(), Path(root).resolve())
    log = _git(root, "log", "-1", "--format=%H", "--", rel)
    return (log.stdout.strip() or None) if log.returncode == 0 else None


def committed_hash(commit, path=PLAN_PATH, root=ROOT):
    """The plan hash of the copy of the plan file in `commit`."""
    rel = os.path.relpath(Path(path).resolve(), Path(root).resolve())
    show = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{rel}"], capture_output=True)
    if show.returncode:
        return None
    return hashlib.sha256(show.stdout).hexdigest()[:12]


def start_check(plan, root=ROOT):
    """Raises PlanError unless the plan file is committed as it is on disk. Returns the plan's
    commit."""
    commit = plan_commit(plan["path"], root)
    if commit is None:
        raise PlanError(f"{plan['path']} is not committed: commit the plan before any run")
    if committed_hash(commit, plan["path"], root) != plan["hash"]:
        raise PlanError(f"{plan['path']} differs from its last commit {commit[:12]}: commit "
                        "the change as a new plan version (with its reason) before any run")
    return commit


def stamp(record, plan, commit, clean):
    """Adds the plan hash and version, the commit and the work tree's state to `record`."""
    record.update(plan_hash=plan["hash"], plan_version=plan["version"], commit=commit,
                  clean=bool(clean))
    return record


def is_ancestor(ancestor, commit, root=ROOT):
    """True if `ancestor` is `commit` or one of its ancestors; PlanError if git cannot tell
    (an unknown commit)."""
    r = _git(root, "merge-base", "--is-ancestor", ancestor, commit)
    if r.returncode in (0, 1):
        return r.returncode == 0
    raise PlanError(f"git cannot compare {ancestor[:12]} with {str(commit)[:12]}: "
                    f"{r.stderr.strip() or 'unknown commit'}")


def check_runs(runs, plan, root=ROOT):
    """Refuses (PlanError, naming the runs) runs made under another plan hash, without a
    commit, or at a commit that does not descend from the plan's commit. Returns the plan's
    commit."""
    anchor = plan_commit(plan["path"], root)
    if anchor is None:
        raise PlanError(f"{plan['path']} is not committed: no run can descend from it")
    bad = []
    ancestry = {}
    for r in runs:
        key = f"{r.get('regime')}/{r.get('method')}/seed {r.get('seed')}"
        if r.get("plan_hash") != plan["hash"]:
            bad.append(f"{key}: plan {r.get('plan_hash')}, not {plan['hash']}")
        elif not r.get("commit"):
            bad.append(f"{key}: no commit recorded")
        else:
            c = r["commit"]
            if c not in ancestry:
                ancestry[c] = is_ancestor(anchor, c, root)
            if not ancestry[c]:
                bad.append(f"{key}: commit {c[:12]} does not descend from the plan's {anchor[:12]}")
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise PlanError(f"{len(bad)} run(s) not made under plan {plan['hash']}: "
                        + "; ".join(bad[:5]) + more)
    return anchor
