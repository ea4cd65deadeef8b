"""The figure of a plan version 2 report: each claim's and control's paired effect, 95% CI.

`plot_effects(claims, controls, path)` draws one row per claim (counted) and per control
(apart, below a rule): the mean of the per-seed differences A - B with its paired-t 95%
interval, each seed's difference as a dot, and zero as a line. The sign is turned so that
right is always the paper's direction (a loss claim "lower is better" is drawn as B - A), and
the verdict is written at the right. Accuracy effects are in percentage points; the loss
claim has its own axis scale, so it is drawn in its own panel.

Example:

>>> plot_effects(claims, controls, "docs/evidence_fmnist_cpu_effects.png")  # doctest: +SKIP
"""

import math


def _oriented(row):
    """(mean, lo, hi, diffs) in the paper's direction, in pp for accuracies."""
    sign = 1.0 if row.get("higher_is_better", True) else -1.0
    unit = 100.0 if row["metric"].endswith("_acc") else 1.0
    lo, hi = row["ci"]
    ends = sorted((sign * unit * lo, sign * unit * hi))
    return sign * unit * row["mean"], ends[0], ends[1], [sign * unit * d for d in row["diffs"]]


def _label(row):
    return f"{row['id']} {row['a']} vs {row['b']} ({row['regime']})"


def _panel(ax, rows, verdicts, xlabel):
    for y, row in enumerate(rows):
        mean, lo, hi, diffs = _oriented(row)
        ax.scatter(diffs, [y] * len(diffs), s=9, color="0.6", zorder=1)
        if math.isfinite(mean):
            ax.errorbar([mean], [y], xerr=[[mean - lo], [hi - mean]], fmt="o", color="C0",
                        capsize=3, zorder=2)
        ax.annotate(verdicts[y], (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [_label(r) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel, fontsize=8)


def plot_effects(claims, controls, path, title=""):
    """Writes the effects figure to `path` (PNG); returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = [r for r in claims + controls if r["metric"].endswith("_acc")]
    other = [r for r in claims + controls if not r["metric"].endswith("_acc")]
    counted = {r["id"] for r in claims}

    def verdict(r):
        if r["id"] in counted:
            return r.get("verdict", "")
        return "control passed" if r.get("passed") else "control failed"

    heights = [max(len(acc), 1), max(len(other), 1)] if other else [max(len(acc), 1)]
    fig, axes = plt.subplots(len(heights), 1, figsize=(8.5, 0.45 * sum(heights) + 1.6),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    _panel(axes[0][0], acc, [verdict(r) for r in acc],
           "A - B in test accuracy (pp), in the paper's direction; dots: seeds; bars: 95% CI")
    if other:
        _panel(axes[1][0], other, [verdict(r) for r in other],
               "B - A in training loss (lower is better for A); dots: seeds; bars: 95% CI")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
