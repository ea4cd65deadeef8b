"""The README's evidence section for the current plan, rebuilt from the committed raw runs.

`readme_section(docs, link_dir)` reads every `<docs>/<prefix>_runs.json.gz` of the current
plan (`evidence_plan.report_prefix`: the plan's primary profile first, the replications
after it), analyses each with the plan's
own test (`evidence_fmnist_report.analyse`: paired t, Holm across the claims; controls apart)
and returns one summary table: a row per claim with each profile's effect, 95% interval and
verdict, a row for the controls, and the primary analysis' last line. The older plan
versions' results are linked with their own last lines. Nothing is trained.

Example:

>>> print(readme_section("docs"))  # doctest: +SKIP
"""

import os

import evidence_plan as ep
import evidence_stats as es
from evidence_fmnist_report import (
    _fmt_diff,
    analyse,
    analyse_supporting,
    load_raw,
    previous_summaries,
    setup_checks,
)

HISTORY = (("cpu", "evidence.md"), ("confirm", "evidence_confirm.md"), ("gpu", "evidence_gpu.md"))


def profiles_in(docs, plan):
    """The plan's profiles with committed raw runs in `docs`, the primary one first."""
    found = [p for p in plan["profiles"]
             if os.path.exists(os.path.join(docs, ep.report_prefix(plan, p) + "_runs.json.gz"))]
    return sorted(found, key=lambda p: (p != plan["primary_profile"], p))


def _cell(row):
    lo, hi = row["ci"]
    effect = f"{_fmt_diff(row['metric'], row['mean'])} [{_fmt_diff(row['metric'], lo)}, " \
             f"{_fmt_diff(row['metric'], hi)}]"
    verdict = row["verdict_text"].replace("**", "")
    return f"**{effect}** {verdict}" if row["verdict"] != es.NOT_RESOLVED else f"{effect} {verdict}"


def _device(meta):
    return f"`{meta['backend']}`, {meta['cpus']} CPUs, {meta['wall_seconds'] / 60:.0f} min"


def readme_section(docs="docs", link_dir="docs"):
    """The section's markdown (without the markers)."""
    plans = [ep.load_plan(path) for _, path in sorted(ep.PLAN_PATHS.items(), reverse=True)]
    plan = next((p for p in plans if profiles_in(docs, p)), plans[0])  # the newest with runs
    profiles = profiles_in(docs, plan)
    plan_file = os.path.basename(plan["path"])
    if not profiles:
        raise FileNotFoundError(f"no raw runs of plan {plan['hash']} in {docs}: run `make evidence` first")
    results = []
    for profile in profiles:
        runs, meta = load_raw(docs, plan, profile)
        ep.check_runs(runs, plan)
        claims, controls = analyse(runs, plan, profile)
        failed = [f"{r['id']} {r['regime']}" for r in setup_checks(runs, plan) if not r["passed"]]
        results.append((profile, meta, claims, controls, analyse_supporting(runs, plan), failed))

    def link(profile):
        return f"[{profile}]({link_dir}/{ep.report_prefix(plan, profile)}.md)"

    heads = [link(p) + (" (primary)" if p == plan["primary_profile"] else " (replication)")
             for p, *_ in results]
    lines = [
        "## Evidence: each paper's claim, as its paper compares it",
        "",
        f"`make evidence` runs plan version {plan['version']} "
        f"([{link_dir}/{plan_file}]({link_dir}/{plan_file}), hash `{plan['hash']}`, "
        "committed before any run): the four papers' claims on Fashion-MNIST, each arm of a seed "
        "from the same initial weights and batches; paired t-test, Holm's correction across the "
        "claims, controls apart. Cells: A − B [95% interval] and the verdict (**bold**: significant "
        "after the correction). Runs: " + "; ".join(f"{p}: {_device(m)}" for p, m, *_ in results) + ".",
        "",
        "| claim (A vs B) | regime | " + " | ".join(heads) + " |",
        "|---|---|" + "---|" * len(results),
    ]
    for i, row in enumerate(results[0][2]):
        cells = [_cell(claims[i]) for _, _, claims, *_ in results]
        lines.append(f"| {row['id']} {row['claim']} ({row['paper']}) | {row['regime']} | "
                     + " | ".join(cells) + " |")
    for i, row in enumerate(results[0][4]):
        cells = [_cell(supporting[i]) for *_, supporting, _ in results]
        lines.append(f"| {row['id']} {row['claim']} ({row['paper']}; supporting, not counted) | "
                     f"{row['regime']} | " + " | ".join(cells) + " |")
    controls = [", ".join(f"{c['id']} {'passed' if c['passed'] else 'failed'}" for c in ctl)
                + "; K4, K5: " + (f"failed for {', '.join(failed)}" if failed else "all passed")
                for _, _, _, ctl, _, failed in results]
    lines.append("| controls (not counted; regime checks in the report) | | " + " | ".join(controls) + " |")
    history = [f"[{name}]({link_dir}/{path})" for name, path in HISTORY
               if os.path.exists(os.path.join(docs, path))]
    lines += ["", f"`{es.summary_line(results[0][2], plan['hash'])}`", ""]
    earlier = "".join(f"Plan version {version} ([{link_dir}/{md}]({link_dir}/{md})), superseded (the "
                      f"current plan says why), stays reported: `{line}`. "
                      for version, _, md, line in previous_summaries(plan, docs))
    if history:
        lines.append(earlier + "Plan version 1 (scikit-learn digits; its claims were not all the papers' "
                     "comparisons, see the plan) stays reported as history: " + ", ".join(history)
                     + f" and [{link_dir}/evidence_overview.md]({link_dir}/evidence_overview.md). "
                     "This section is generated from the raw runs by "
                     "`python examples/evidence.py --readme-only`.")
    return "\n".join(lines)
