"""The report of a plan's runs (versions 2 and 3): checks, claims, controls, supporting
comparisons, markdown, raw runs.

`report(runs, plan, meta, args)` refuses runs made under another plan, another profile or at
a commit that does not descend from the plan's commit (`evidence_plan.check_runs`), judges
the plan's claims as one family (paired t, Holm; `evidence_stats.judge`), the controls apart
(one-sided paired t, not counted), the supporting comparisons apart (their own Holm family,
not counted), applies the regime-check gates, and writes
`<docs>/<prefix>.md`, `<docs>/<prefix>_effects.png` (the effects figure),
`<docs>/<prefix>_runs.json.gz` (every run, to rebuild the report without training) and
`<out>/results.json`. Its last line is `evidence_stats.summary_line`.
"""

import gzip
import json
import math
import os

import numpy as np

import evidence_plan as ep
import evidence_stats as es
from evidence_fmnist_figure import plot_effects

# Plan version 2's CPU budget for its primary profile (its "CPU budget" section); from
# version 3 on, a profile's `budget_minutes` in the plan.
BUDGET_MINUTES = {"fmnist-cpu": 30}
METRIC_NAMES = {"test_acc": "test accuracy", "train_loss": "training loss (eval mode)"}


def _is_acc(metric):
    return metric.endswith("_acc")


def _fmt_diff(metric, v):
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{100 * v:+.2f} pp" if _is_acc(metric) else f"{v:+.4f}"


def _fmt_p(p):
    return "n/a" if p is None or not math.isfinite(p) else (f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}")


def paired_diffs(runs, regime, a, b, metric):
    """Per-seed A - B over the seeds that have both runs, in seed order."""
    by = {}
    for r in runs:
        if r["regime"] == regime and r["method"] in (a, b) and metric in r:
            by.setdefault(r["seed"], {})[r["method"]] = r[metric]
    seeds = sorted(s for s, v in by.items() if a in v and b in v)
    return seeds, [by[s][a] - by[s][b] for s in seeds], by


def _means(by, a, b):
    va = [v[a] for v in by.values() if a in v]
    vb = [v[b] for v in by.values() if b in v]
    return (float(np.mean(va)) if va else float("nan"), float(np.mean(vb)) if vb else float("nan"))


def _rows(runs, specs):
    rows = []
    for c in specs:
        seeds, diffs, by = paired_diffs(runs, c["regime"], c["a"], c["b"], c["metric"])
        mean_a, mean_b = _means(by, c["a"], c["b"])
        rows.append(dict(c, seeds=seeds, diffs=diffs, mean_a=mean_a, mean_b=mean_b))
    return rows


def validate(runs, plan, profile):
    """PlanError unless every run belongs to this plan (hash, commit) and profile, once."""
    anchor = ep.check_runs(runs, plan)
    other = sorted({r.get("profile") for r in runs} - {profile}, key=str)
    if other:
        raise ep.PlanError(f"runs of other profiles {other} mixed with {profile}: report each "
                           "profile from its own folder")
    keys = [(r["regime"], r["method"], r["seed"]) for r in runs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ep.PlanError(f"runs recorded twice: {dup[:3]}")
    return anchor


def missing_runs(runs, plan, profile):
    cfg = plan["profiles"][profile]
    have = {(r["regime"], r["method"], r["seed"]) for r in runs}
    return [(g, a, s) for g, spec in plan["regimes"].items() for s in
            range(cfg["first_seed"], cfg["first_seed"] + cfg["seeds"]) for a in spec["arms"]
            if (g, a, s) not in have]


def setup_checks(runs, plan):
    """K4 (the overfitting regimes overfit) and K5 (baselines above the declared floor)."""
    out = []
    for regime, floor in plan["baseline_floor"].items():
        none = [r for r in runs if r["regime"] == regime and r["method"] == "none"]
        loss = float(np.mean([r["train_loss"] for r in none])) if none else float("nan")
        acc = float(np.mean([r["test_acc"] for r in none])) if none else float("nan")
        out.append({"id": "K4", "regime": regime, "what": "`none` training loss (eval mode)",
                    "value": loss, "bound": f"< {plan['overfit_train_loss_max']}",
                    "passed": bool(loss < plan["overfit_train_loss_max"])})
        out.append({"id": "K5", "regime": regime, "what": "`none` test accuracy vs the floor",
                    "value": acc, "bound": f">= {floor}", "passed": bool(acc >= floor)})
    return out


def analyse(runs, plan, profile):
    """Claims (judged as one family, gated) and controls, from validated runs."""
    controls = [es.check(r, plan["control_alpha"]) for r in _rows(runs, plan["controls"])]
    passed = {c["id"]: c["passed"] for c in controls}
    claims = _rows(runs, plan["claims"])
    for c in claims:
        c["gate_ok"] = None if c.get("gate") is None else passed.get(c["gate"], False)
    return es.judge(claims, plan["alpha"]), controls


def analyse_supporting(runs, plan):
    """The plan's supporting comparisons: paired t, Holm among themselves, never in N."""
    rows = _rows(runs, plan.get("supporting", []))
    return es.judge(rows, plan["alpha"]) if rows else []


def load_raw(docs, plan, profile):
    """`(runs, meta)` of the committed raw file `<docs>/<prefix>_runs.json.gz`."""
    with gzip.open(os.path.join(docs, ep.report_prefix(plan, profile) + "_runs.json.gz"), "rt") as f:
        saved = json.load(f)
    return saved["runs"], saved["meta"]


def budget_minutes(plan, profile):
    default = BUDGET_MINUTES.get(profile) if plan["version"] <= 2 else None
    return plan["profiles"][profile].get("budget_minutes", default)


def _claim_line(r):
    lo, hi = r["ci"]
    return (f"| {r['id']} | {r['claim']} ({r['paper']}, {r['source']}) | {r['regime']} | "
            f"{METRIC_NAMES.get(r['metric'], r['metric'])} | {r['mean_a']:.4f} | {r['mean_b']:.4f} | "
            f"{_fmt_diff(r['metric'], r['mean'])} | [{_fmt_diff(r['metric'], lo)}, "
            f"{_fmt_diff(r['metric'], hi)}] | {_fmt_p(r['p'])} | {_fmt_p(r['p_holm'])} | "
            f"{_fmt_p(r['p_perm'])} | {r['n']} | {r['verdict_text']} |")


def build_markdown(plan, meta, anchor, claims, controls, setup, missing, prefix, runs, supporting=()):
    primary = meta["profile"] == plan["primary_profile"]
    plan_file = os.path.basename(plan["path"])
    lines = [f"# Evidence, plan version {plan['version']}: profile {meta['profile']}", ""]
    lines.append(
        f"{'**Primary analysis.**' if primary else '**Replication** (not the primary analysis).'} "
        f"Plan `{plan['hash']}` ([docs/{plan_file}]({plan_file}), committed at "
        f"`{anchor[:12]}`); every run below was made under this plan at a commit descending from "
        f"it ({sum(1 for r in runs if not r.get('clean'))} of {len(runs)} runs on a work tree with "
        f"uncommitted changes). Backend `{meta['backend']}`, {meta['cpus']} CPUs, wall time "
        f"{meta['wall_seconds'] / 60:.1f} min, {meta['jobs']} process(es). Same initial weights "
        f"across arms: {'yes' if meta['same_init'] else '**no**'}.")
    budget = budget_minutes(plan, meta["profile"])
    if budget and meta["wall_seconds"] > 60 * budget:  # the training run's time, also on rebuilds
        lines.append(f"\n**Over the plan's CPU budget** of {budget} minutes on 2 cores.")
    lines += ["", f"![Each claim's and control's paired effect with its 95% interval]({prefix}_effects.png)"]
    lines += ["", "## Claims (counted: paired t, n - 1 df, Holm across all of them)", "",
              "| # | claim (paper, where) | regime | metric | A | B | A − B | 95% CI | p | p (Holm) "
              "| p (perm.) | n | verdict |", "|" + "---|" * 13]
    lines += [_claim_line(r) for r in claims]
    lines += ["", "## Controls and regime checks (reported apart, not counted)", "",
              "| # | check (paper, where) | regime | A − B | 95% CI | p (one-sided) | n | passed |",
              "|" + "---|" * 8]
    for r in controls:
        lo, hi = r["ci"]
        lines.append(
            f"| {r['id']} | {r['claim']} ({r['paper']}, {r['source']}) | {r['regime']} | "
            f"{_fmt_diff(r['metric'], r['mean'])} | [{_fmt_diff(r['metric'], lo)}, "
            f"{_fmt_diff(r['metric'], hi)}] | {_fmt_p(r['p_one_sided'])} | {r['n']} | "
            f"{'yes' if r['passed'] else '**no**'} |")
    for r in setup:
        lines.append(f"| {r['id']} | {r['what']} {r['bound']} | {r['regime']} | {r['value']:.4f} | | "
                     f"| | {'yes' if r['passed'] else '**no**'} |")
    if supporting:
        lines += ["", "## Supporting comparisons (not counted: Holm among themselves)", "",
                  "| # | comparison (paper, where) | regime | metric | A | B | A − B | 95% CI | p "
                  "| p (Holm) | p (perm.) | n | verdict |", "|" + "---|" * 13]
        lines += [_claim_line(r) for r in supporting]
    lines += _previous_plans(plan)
    history = _history()
    if history:
        lines += ["", "## Plan version 1 (digits), re-analysed with this plan's test", "",
                  "History, not counted: plan version 1's claims were not all the papers' "
                  "comparisons (see the plan). Its reports stay in docs/evidence*.md.", ""]
        lines += [f"- {line}" for line in history]
    lines += ["", f"Missing runs: {len(missing)}" + (f" (first: {missing[:3]})" if missing else "")]
    lines += ["", f"Raw runs: [{prefix}_runs.json.gz]({prefix}_runs.json.gz).", "",
              es.summary_line(claims, plan["hash"])]
    return "\n".join(lines) + "\n"


def previous_summaries(plan, docs=None):
    """`[(version, plan hash, report file, summary line)]` of the older plan versions' primary
    profiles, from their committed raw runs (empty where those are missing)."""
    docs = docs or str(ep.ROOT / "docs")
    out = []
    for version, path in sorted(ep.PLAN_PATHS.items()):
        if version >= plan["version"] or not os.path.exists(path):
            continue
        old = ep.load_plan(path)
        prefix = ep.report_prefix(old, old["primary_profile"])
        if not os.path.exists(os.path.join(docs, f"{prefix}_runs.json.gz")):
            continue
        claims, _ = analyse(load_raw(docs, old, old["primary_profile"])[0], old, old["primary_profile"])
        out.append((version, old["hash"], f"{prefix}.md", es.summary_line(claims, old["hash"])))
    return out


def _previous_plans(plan):
    rows = previous_summaries(plan)
    if not rows:
        return []
    lines = ["", "## Earlier plan versions (reported under their own plans, not counted)", ""]
    lines += [f"- plan version {v} ([{md}]({md})): `{line}`" for v, _, md, line in rows]
    return lines


def _history():
    """Plan version 1's reports re-analysed (empty where they or matplotlib are missing)."""
    try:
        from evidence_history import history_lines

        return history_lines(str(ep.ROOT / "docs"))
    except ImportError:
        return []


def _plain(rows):
    keep = ("id", "regime", "a", "b", "metric", "higher_is_better", "gate", "gate_ok", "seeds",
            "diffs", "n", "mean", "sd", "se", "t", "df", "p", "ci", "p_perm", "p_holm",
            "p_one_sided", "passed", "rejected", "direction", "verdict")
    return [{k: r[k] for k in keep if k in r} for r in rows]


def report(runs, plan, meta, args):
    """Validates, analyses and writes; returns {"stdout": [...], "last_line": str}."""
    anchor = validate(runs, plan, meta["profile"])
    claims, controls = analyse(runs, plan, meta["profile"])
    supporting = analyse_supporting(runs, plan)
    setup = setup_checks(runs, plan)
    missing = missing_runs(runs, plan, meta["profile"])
    prefix = ep.report_prefix(plan, meta["profile"])
    os.makedirs(args.docs, exist_ok=True)
    md = build_markdown(plan, meta, anchor, claims, controls, setup, missing, prefix, runs, supporting)
    plot_effects(claims, controls, os.path.join(args.docs, f"{prefix}_effects.png"),
                 title=f"plan {plan['hash']}, profile {meta['profile']}")
    with open(os.path.join(args.docs, f"{prefix}.md"), "w") as f:
        f.write(md)
    ordered = sorted(runs, key=lambda r: (r["regime"], r["seed"], r["method"]))
    if not getattr(args, "report_only", False):  # a rebuild keeps the training run's raw file
        with gzip.open(os.path.join(args.docs, f"{prefix}_runs.json.gz"), "wt") as f:
            json.dump({"plan_hash": plan["hash"], "meta": meta, "runs": ordered}, f)
    results = {"plan_hash": plan["hash"], "plan_commit": anchor, "meta": meta, "claims": _plain(claims),
               "controls": _plain(controls), "supporting": _plain(supporting), "setup_checks": setup,
               "missing": missing}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    stdout = [f"{r['id']}: {_fmt_diff(r['metric'], r['mean'])}, p {_fmt_p(r['p'])}, "
              f"Holm {_fmt_p(r['p_holm'])}, n {r['n']}: {r['verdict_text'].replace('**', '')}"
              for r in claims]
    stdout += [f"{r['id']} ({r['regime']}): {'passed' if r['passed'] else 'FAILED'}" for r in controls]
    stdout += [f"{r['id']} (supporting): {_fmt_diff(r['metric'], r['mean'])}, p {_fmt_p(r['p'])}: "
               f"{r['verdict_text'].replace('**', '')}" for r in supporting]
    return {"stdout": stdout, "last_line": es.summary_line(claims, plan["hash"])}
