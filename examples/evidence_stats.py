"""The statistics of `make evidence` (plan version 2, docs/evidence_plan.md), numpy only.

- `paired_t(diffs)`: the paired t-test (two-sided, n - 1 degrees of freedom) on per-seed
  differences A - B: mean, SD, SE, t, p and the 95% t interval.
- `paired_permutation(diffs)`: the paired sign-flip permutation test (exact over all 2^n sign
  patterns up to `exact_max` seeds, Monte Carlo above), two-sided.
- `holm(pvalues, alpha)`: Holm's step-down correction: adjusted p-values and rejections.
- `judge(rows, alpha)`: verdicts of a family of claims: *reproduced* (Holm-rejected, mean in
  the paper's direction), *refuted* (Holm-rejected, against it), else *not resolved*; every
  claim stays in N (no paired runs, or a failed regime check, is *not resolved*).
- `min_detectable_effect(sd, n, alpha, power)`: the planning formula of the plan.
- `summary_line(rows, plan_hash)`: the report's last line.

Student's t distribution is computed here (regularised incomplete beta by its continued
fraction) so that the report needs no scipy; the tests check it against scipy.stats.

Example:

>>> r = paired_t([0.01, 0.02, 0.015, 0.005])
>>> round(r["mean"], 4), r["df"]
(0.0125, 3)
"""

import math

import numpy as np

REPRODUCED, REFUTED, NOT_RESOLVED = "reproduced", "refuted", "not resolved"


# --------------------------------------------------------------------------- Student's t


def _betacf(a, b, x, iters=300, eps=1e-15):
    """Continued fraction of the regularised incomplete beta (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, iters + 1):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
                    -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a, b, x):
    """Regularised incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_sf(t, df):
    """P(T > t) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_ppf(q, df):
    """The `q` quantile of Student's t with `df` degrees of freedom (bisection on `t_sf`)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q: expected 0 < q < 1, got {q}")
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > 1.0 - q:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_sf(mid, df) > 1.0 - q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------- tests


def _diffs(diffs):
    d = np.asarray(diffs, dtype="float64").ravel()
    if not np.all(np.isfinite(d)):
        raise ValueError("diffs: expected finite per-seed differences, got NaN or inf")
    return d


def paired_t(diffs, confidence=0.95):
    """Two-sided paired t-test on per-seed differences (n - 1 degrees of freedom).

    Args:
        diffs: the per-seed differences A - B.
        confidence: level of the t interval of the mean difference.

    Returns:
        dict with n, mean, sd, se, t, df, p and ci (low, high). With fewer than 2
        differences p, t and the interval are NaN. With all differences equal, p is 1 if
        they are 0 and 0 otherwise.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected 0 < confidence < 1, got {confidence}")
    d = _diffs(diffs)
    n = len(d)
    nan = float("nan")
    if n < 2:
        mean = float(d.mean()) if n else nan
        return {"n": n, "mean": mean, "sd": nan, "se": nan, "t": nan, "df": max(n - 1, 0),
                "p": nan, "ci": (nan, nan)}
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se, df = sd / math.sqrt(n), n - 1
    if se == 0.0:
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0.0 else 0.0
    else:
        t = mean / se
        p = min(1.0, 2.0 * t_sf(abs(t), df))
    half = t_ppf(0.5 + confidence / 2.0, df) * se
    return {"n": n, "mean": mean, "sd": sd, "se": se, "t": t, "df": df, "p": p,
            "ci": (mean - half, mean + half)}


def paired_permutation(diffs, exact_max=16, draws=100_000, seed=0):
    """Two-sided paired sign-flip permutation test of mean(diffs) == 0.

    Exact (all 2^n sign patterns) for n <= `exact_max`, else `draws` random patterns from
    `seed` (the observed pattern counted once, so p > 0). Returns p (NaN for n < 1).
    """
    d = _diffs(diffs)
    n = len(d)
    if n == 0:
        return float("nan")
    observed = abs(d.sum())
    tol = 1e-12 * max(1.0, float(np.abs(d).sum()))
    if n <= exact_max:
        patterns = ((np.arange(2 ** n)[:, None] >> np.arange(n)[None]) & 1) * 2 - 1
        sums = np.abs(patterns @ d)
        return float(np.mean(sums >= observed - tol))
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(draws, n))
    hits = np.sum(np.abs(signs @ d) >= observed - tol)
    return float((hits + 1) / (draws + 1))


def holm(pvalues, alpha=0.05):
    """Holm's step-down correction.

    Args:
        pvalues: one p-value per hypothesis of the family; NaN (no test) counts as 1, so
            the hypothesis stays in the family and is never rejected.
        alpha: family-wise error rate.

    Returns:
        (adjusted p-values, rejected flags), in the input order.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected 0 < alpha < 1, got {alpha}")
    p = np.array([1.0 if (v is None or math.isnan(v)) else float(v) for v in pvalues])
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    rejected = np.zeros(m, dtype=bool)
    for rank, i in enumerate(order):
        if p[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return adjusted.tolist(), rejected.tolist()


def min_detectable_effect(sd, n, alpha=0.05, power=0.8):
    """Smallest true mean difference a two-sided paired t-test at `alpha` detects with
    probability `power` from `n` seeds whose paired differences scatter by `sd`:
    (t(1 - alpha/2, n - 1) + t(power, n - 1)) * sd / sqrt(n)."""
    if n < 2:
        raise ValueError(f"n: expected at least 2 paired seeds, got {n}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power: expected 0 < power < 1, got {power}")
    return (t_ppf(1.0 - alpha / 2.0, n - 1) + t_ppf(power, n - 1)) * sd / math.sqrt(n)


# --------------------------------------------------------------------------- verdicts


def judge(rows, alpha=0.05, tests=None):
    """Verdicts for one family of claims (Holm across all of them).

    Args:
        rows: dicts with `id`, `diffs` (per-seed A - B, possibly empty) and
            `higher_is_better`; optional `gate_ok` (False: the regime check failed).
        alpha: family-wise error rate.
        tests: the `paired_t` results of the rows when their differences are not at hand
            (re-analysis of published means and SEs); default: computed from `diffs`.

    Returns:
        new dicts: the input plus the `paired_t` result, `p_perm`, `p_holm`, `rejected`,
        `direction` ("paper", "opposite" or "none") and `verdict` / `verdict_text`.
    """
    tests = tests if tests is not None else [paired_t(r["diffs"]) for r in rows]
    adjusted, rejected = holm([t["p"] for t in tests], alpha)
    out = []
    for r, t, p_adj, rej in zip(rows, tests, adjusted, rejected):
        sign = (1 if r["higher_is_better"] else -1) * (t["mean"] if t["n"] else 0.0)
        direction = "paper" if sign > 0 else "opposite" if sign < 0 else "none"
        if t["n"] < 2:
            verdict, text = NOT_RESOLVED, "not resolved (no paired runs)"
        elif r.get("gate_ok") is False:
            verdict, text = NOT_RESOLVED, "not resolved (regime check failed)"
        elif rej and direction == "paper":
            verdict, text = REPRODUCED, "**reproduced**"
        elif rej and direction == "opposite":
            verdict, text = REFUTED, "**refuted** (significant, opposite direction)"
        else:
            verdict, text = NOT_RESOLVED, "not resolved (not significant after Holm)"
        p_perm = paired_permutation(r["diffs"]) if len(r["diffs"]) else float("nan")
        out.append(dict(r, **t, p_perm=p_perm, p_holm=p_adj, rejected=bool(rej),
                        direction=direction, verdict=verdict, verdict_text=text))
    return out


def t_from_summary(mean, se, n, confidence=0.95):
    """A `paired_t` result from a published mean paired difference, its SE and n."""
    df = n - 1
    t = mean / se if se > 0 else (0.0 if mean == 0 else math.copysign(math.inf, mean))
    p = min(1.0, 2.0 * t_sf(abs(t), df))
    half = t_ppf(0.5 + confidence / 2.0, df) * se
    return {"n": n, "mean": mean, "sd": se * math.sqrt(n), "se": se, "t": t, "df": df, "p": p,
            "ci": (mean - half, mean + half)}


def check(row, alpha=0.05):
    """A regime check or control: one-sided paired t at `alpha` in the stated direction.
    Returns the `paired_t` result plus `passed` (False with fewer than 2 seeds)."""
    t = paired_t(row["diffs"])
    sign = 1 if row["higher_is_better"] else -1
    if t["n"] < 2 or math.isnan(t["p"]):
        return dict(row, **t, p_one_sided=float("nan"), passed=False)
    one = t["p"] / 2 if sign * t["mean"] > 0 else 1 - t["p"] / 2
    return dict(row, **t, p_one_sided=one, passed=bool(one < alpha))


def summary_line(rows, plan_hash):
    """`primary analysis: K of N claims reproduced, F refuted (paired t, Holm); plan <hash>`."""
    k = sum(r["verdict"] == REPRODUCED for r in rows)
    f = sum(r["verdict"] == REFUTED for r in rows)
    return (f"primary analysis: {k} of {len(rows)} claims reproduced, {f} refuted "
            f"(paired t, Holm); plan {plan_hash}")
