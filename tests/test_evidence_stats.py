"""examples/evidence_stats.py: the paired t-test, the permutation test, Holm and the verdicts
against known values (scipy.stats where it is installed; hand-computed values everywhere)."""

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
try:
    import evidence_stats as es
finally:
    sys.path.remove(str(ROOT / "examples"))


# Student's t quantiles from printed tables (two-sided 95%: 12.706 at 1 df, 2.262 at 9 df).
@pytest.mark.parametrize("q, df, want", [(0.975, 1, 12.7062047), (0.975, 9, 2.2621572),
                                         (0.975, 30, 2.0422725), (0.8, 11, 0.8755300),
                                         (0.995, 5, 4.0321430)])
def test_t_quantiles_match_tables(q, df, want):
    assert es.t_ppf(q, df) == pytest.approx(want, abs=2e-7)
    assert es.t_ppf(1 - q, df) == pytest.approx(-want, abs=2e-7)
    assert es.t_sf(want, df) == pytest.approx(1 - q, abs=1e-7)  # 7 printed digits


def test_t_distribution_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 7, 11, 23, 47, 200):
        for t in (0.0, 0.1, 0.7, 1.5, 2.2, 3.9, 8.0, 40.0):
            assert es.t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-9, abs=1e-15)
        for q in (0.6, 0.8, 0.975, 0.99643):
            assert es.t_ppf(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-9)


def test_paired_t_hand_computed():
    r = es.paired_t([0.01, 0.02, 0.015, 0.005])
    # mean 0.0125, sd sqrt(0.000125 / 3), t = 3.8729833 on 3 df, p = 0.0304663 (tables).
    assert r["n"] == 4 and r["df"] == 3
    assert r["mean"] == pytest.approx(0.0125)
    assert r["sd"] == pytest.approx(math.sqrt(0.000125 / 3))
    assert r["t"] == pytest.approx(3.8729833462)
    assert r["p"] == pytest.approx(0.0304662917, rel=1e-8)
    half = 3.1824463052 * r["se"]  # t(0.975, 3)
    assert r["ci"] == pytest.approx((0.0125 - half, 0.0125 + half), rel=1e-9)


def test_paired_t_matches_scipy_ttest_rel():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in (2, 3, 5, 12, 40):
        a = rng.normal(0.9, 0.01, n)
        b = a - rng.normal(0.002, 0.004, n)
        r = es.paired_t(a - b)
        want = stats.ttest_rel(a, b)
        assert r["t"] == pytest.approx(want.statistic, rel=1e-9)
        assert r["p"] == pytest.approx(want.pvalue, rel=1e-7)
        lo, hi = stats.t.interval(0.95, n - 1, loc=np.mean(a - b), scale=stats.sem(a - b))
        assert r["ci"] == pytest.approx((lo, hi), rel=1e-8)


def test_paired_t_degenerate_inputs():
    r = es.paired_t([0.003])
    assert r["n"] == 1 and math.isnan(r["p"]) and math.isnan(r["ci"][0])
    assert math.isnan(es.paired_t([])["mean"])
    assert es.paired_t([0.0, 0.0, 0.0])["p"] == 1.0
    assert es.paired_t([0.01, 0.01])["p"] == 0.0
    with pytest.raises(ValueError, match="diffs"):
        es.paired_t([0.1, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        es.paired_t([0.1, 0.2], confidence=1.5)


def test_permutation_exact_values():
    # |±1 ±2 ±3|: 6, 4, 2, 0, 0, 2, 4, 6 -> 2 of 8 patterns reach 6.
    assert es.paired_permutation([1, 2, 3]) == 0.25
    # All 2^5 patterns of five equal differences: only all-plus and all-minus reach 5.
    assert es.paired_permutation([1.0] * 5) == pytest.approx(2 / 32)
    assert es.paired_permutation([0.0, 0.0]) == 1.0


def test_permutation_monte_carlo_agrees_with_exact():
    d = np.random.default_rng(0).normal(0.3, 1.0, 14)
    exact = es.paired_permutation(d)
    approx = es.paired_permutation(d, exact_max=10, draws=40_000, seed=1)
    # Binomial SE of the Monte Carlo estimate: sqrt(p (1 - p) / draws) <= 0.0025.
    assert abs(approx - exact) < 4 * math.sqrt(exact * (1 - exact) / 40_000) + 1e-4


def test_permutation_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    if not hasattr(stats, "permutation_test"):
        pytest.skip("scipy without permutation_test")
    d = np.array([0.4, -0.1, 0.9, 0.3, 0.5, -0.2, 0.7, 0.1])
    want = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", alternative="two-sided", n_resamples=np.inf
    ).pvalue
    assert es.paired_permutation(d) == pytest.approx(want)


def test_holm_hand_computed():
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.04*1, 0.06) = 0.06.
    adjusted, rejected = es.holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2: stop (0.04 <= 0.05 is not reached).
    assert rejected == [True, False, False, True]


def test_holm_nan_stays_in_the_family():
    _, with_nan = es.holm([0.03, float("nan")], alpha=0.05)
    _, alone = es.holm([0.03], alpha=0.05)
    assert alone == [True] and with_nan == [False, False]  # 0.03 > 0.05 / 2
    with pytest.raises(ValueError, match="alpha"):
        es.holm([0.1], alpha=0)


def test_min_detectable_effect_has_its_power():
    stats = pytest.importorskip("scipy.stats")
    sd, n, alpha = 0.54, 12, 0.05 / 7
    mde = es.min_detectable_effect(sd, n, alpha)
    assert mde == pytest.approx(0.6501, abs=1e-4)
    # Exact power of the two-sided paired t at that effect (noncentral t): close to 0.8.
    crit, nc = stats.t.ppf(1 - alpha / 2, n - 1), mde / (sd / math.sqrt(n))
    power = stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)
    assert 0.75 < power < 0.85
    with pytest.raises(ValueError, match="n"):
        es.min_detectable_effect(0.5, 1)


def test_plan_mde_table_is_what_the_formula_gives():
    """docs/evidence_plan.md's minimum detectable effects follow from its SDs and seeds."""
    text = (ROOT / "docs" / "evidence_plan.md").read_text()
    rows = re.findall(r"^\| (C\d|K\d) [^|]*\| [^|]*\| ([\d.]+)( pp)? \| (\d+) \| ([\d.]+)( pp)? \| "
                      r"([\d.]+)( pp)? \|", text, re.M)
    assert len(rows) == 8
    for _, sd, _, n, strict, _, loose, _ in rows:
        sd, n = float(sd), int(n)
        assert es.min_detectable_effect(sd, n, 0.05 / 7) == pytest.approx(float(strict), abs=0.006)
        assert es.min_detectable_effect(sd, n, 0.05) == pytest.approx(float(loose), abs=0.006)


def _row(cid, diffs, hib=True, **kw):
    return dict(id=cid, diffs=diffs, higher_is_better=hib, **kw)


def test_judge_verdicts_and_no_silent_drop():
    up = [0.011, 0.009, 0.012, 0.010, 0.008, 0.013]
    rows = es.judge([
        _row("A", up),                               # significant, paper's direction
        _row("B", [-v for v in up]),                 # significant, opposite
        _row("C", [-v for v in up], hib=False),      # a loss that fell: paper's direction
        _row("D", [0.01, -0.01, 0.002, -0.003]),     # null
        _row("E", []),                               # no paired runs: stays in N
        _row("F", up, gate_ok=False),                # regime check failed
        _row("G", [0.0, 0.0, 0.0]),                  # zero: no direction, never refuted
    ])
    got = {r["id"]: r["verdict"] for r in rows}
    assert got == {"A": "reproduced", "B": "refuted", "C": "reproduced", "D": "not resolved",
                   "E": "not resolved", "F": "not resolved", "G": "not resolved"}
    assert rows[4]["verdict_text"] == "not resolved (no paired runs)"
    assert rows[5]["verdict_text"] == "not resolved (regime check failed)"
    assert rows[5]["rejected"] is True  # its p-value still counted in the family
    assert rows[6]["direction"] == "none"
    line = es.summary_line(rows, "abc123def456")
    assert line == ("primary analysis: 2 of 7 claims reproduced, 1 refuted (paired t, Holm); "
                    "plan abc123def456")


def test_judge_holm_needs_more_than_alpha():
    # p ~ 0.03 alone is reproduced; with six null claims beside it Holm asks for 0.05/7.
    d = [0.01, 0.02, 0.015, 0.005]
    assert es.judge([_row("A", d)])[0]["verdict"] == "reproduced"
    family = es.judge([_row("A", d)] + [_row(f"N{i}", [0.01, -0.01, 0.0]) for i in range(6)])
    assert family[0]["verdict"] == "not resolved" and family[0]["p_holm"] == pytest.approx(
        min(1.0, 7 * family[0]["p"]))


def test_check_is_one_sided():
    down = [-0.011, -0.009, -0.012, -0.010]
    assert es.check(_row("K2", down, hib=False))["passed"] is True
    assert es.check(_row("K2", down, hib=True))["passed"] is False
    assert es.check(_row("K2", [0.01]))["passed"] is False
