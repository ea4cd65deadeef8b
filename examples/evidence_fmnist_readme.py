"""The README's evidence section for plan version 2, rebuilt from the committed raw runs.

`readme_section(docs, link_dir)` reads every `<docs>/evidence_fmnist_<profile>_runs.json.gz`
(the plan's primary profile first, the replications after it), analyses each with the plan's
own test (`evidence_fmnist_report.analyse`: paired t, Holm across the claims; controls apart)
and returns one summary table: a row per claim with each profile's effect, 95% interval and
verdict, a row for the controls, and the primary analysis' last line. Plan version 1's
reports are linked as history. Nothing is trained.

Example:

>>> print(readme_section("docs"))  # doctest: +SKIP
"""

import glob
import gzip
import json
import os

import evidence_plan as ep
import evidence_stats as es
from evidence_fmnist_report import _fmt_diff, analyse

PREFIX = "evidence_fmnist_"
HISTORY = (("cpu", "evidence.md"), ("confirm", "evidence_confirm.md"), ("gpu", "evidence_gpu.md"))


def profiles_in(docs, plan):
    """The profiles with committed raw runs in `docs`, the plan's primary one first."""
    found = []
    for path in sorted(glob.glob(os.path.join(docs, PREFIX + "*_runs.json.gz"))):
        name = os.path.basename(path)[len(PREFIX):-len("_runs.json.gz")]
        found.append("fmnist-" + name.replace("_", "-"))
    return sorted(found, key=lambda p: (p != plan["primary_profile"], p))


def _load(docs, profile):
    path = os.path.join(docs, PREFIX + profile[len("fmnist-"):].replace("-", "_") + "_runs.json.gz")
    with gzip.open(path, "rt") as f:
        saved = json.load(f)
    return saved["runs"], saved["meta"]


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
    plan = ep.load_plan()
    profiles = profiles_in(docs, plan)
    if not profiles:
        raise FileNotFoundError(f"no {docs}/{PREFIX}*_runs.json.gz: run `make evidence` first")
    results = []
    for profile in profiles:
        runs, meta = _load(docs, profile)
        ep.check_runs(runs, plan)
        claims, controls = analyse(runs, plan, profile)
        results.append((profile, meta, claims, controls))

    def link(profile):
        return f"[{profile}]({link_dir}/{PREFIX}{profile[len('fmnist-'):].replace('-', '_')}.md)"

    heads = [link(p) + (" (primary)" if p == plan["primary_profile"] else " (replication)")
             for p, *_ in results]
    lines = [
        "## Evidence: each paper's claim, as its paper compares it",
        "",
        f"`make evidence` runs plan version {plan['version']} "
        f"([{link_dir}/evidence_plan.md]({link_dir}/evidence_plan.md), hash `{plan['hash']}`, "
        "committed before any run): the four papers' claims on Fashion-MNIST, each arm of a seed "
        "from the same initial weights and batches; paired t-test, Holm's correction across the "
        "claims, controls apart. Cells: A − B [95% interval] and the verdict (**bold**: significant "
        "after the correction). Runs: " + "; ".join(f"{p}: {_device(m)}" for p, m, *_ in results) + ".",
        "",
        "| claim (A vs B) | regime | " + " | ".join(heads) + " |",
        "|---|---|" + "---|" * len(results),
    ]
    for i, row in enumerate(results[0][2]):
        cells = [_cell(claims[i]) for _, _, claims, _ in results]
        lines.append(f"| {row['id']} {row['claim']} ({row['paper']}) | {row['regime']} | "
                     + " | ".join(cells) + " |")
    controls = [", ".join(f"{c['id']} {'passed' if c['passed'] else 'failed'}" for c in ctl)
                for *_, ctl in results]
    lines.append("| controls (not counted; regime checks in the report) | | " + " | ".join(controls) + " |")
    history = [f"[{name}]({link_dir}/{path})" for name, path in HISTORY
               if os.path.exists(os.path.join(docs, path))]
    lines += ["", f"`{es.summary_line(results[0][2], plan['hash'])}`", ""]
    if history:
        lines.append("Plan version 1 (scikit-learn digits; its claims were not all the papers' "
                     "comparisons, see the plan) stays reported as history: " + ", ".join(history)
                     + f" and [{link_dir}/evidence_overview.md]({link_dir}/evidence_overview.md). "
                     "This section is generated from the raw runs by "
                     "`python examples/evidence.py --readme-only`.")
    return "\n".join(lines)
