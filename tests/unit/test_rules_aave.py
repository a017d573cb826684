"""Aave v3.3, interest, oracle modes, queue delays and the venues' edge lines, by hand through both engines.

Common set-up (as test_aave_rules.py): capital 100 WETH, stake entry at rate 1, one loop at LTV 0.9 ->
collateral 190 tokens, debt 90 WETH; LT 0.95, LB 1.01, fee 10 %, rates 0, gas 0, 12 s blocks, market oracle.
In USD at ETH = U $ and price P: collateral 190 P U, debt 90 U; HF = 190 P .95 / 90.
"""
import numpy as np
import pytest

from backtest.schema import EVENT_KINDS, EXIT_ROUTES
from tests.helpers import check_both, liq_events, market, params

Y = 365 * 86400
DAY = 86400
T0 = 1_700_000_000
REL = EVENT_KINDS["queue_release"]


def usd_market(coll_usd, debt_usd, **kw):
    """ETH/USD and P so that 190 tokens are worth coll_usd and the 90 WETH debt debt_usd at block 1."""
    u = debt_usd / 90
    p = coll_usd / (190 * u)
    return market([1.0, p, p], eth_usd=u, **kw), p, u


# --- Aave v3.3 ------------------------------------------------------------------------------------
def test_v33_applies_from_its_activation_date_and_not_before():
    # ETH = $20, P = 0.49: collateral $1,862 < $2,000, HF 0.98272. The liquidation is at block 1,
    # ts = T0 + 12. v33_from = T0 + 12 (in force, ts >= v33_from): 100 % -> repay 90.
    # v33_from = T0 + 13 (one second later): the v3.0-3.2 rule, 50 % -> repay 45.
    m = market([1.0, 0.49, 0.49], eth_usd=20.0, t0=T0)

    def full(out):
        ev = liq_events(out)
        assert len(ev) == 1 and -ev["debt"][0] == pytest.approx(90.0, rel=1e-12)

    def half(out):
        ev = liq_events(out)
        assert len(ev) == 1 and -ev["debt"][0] == pytest.approx(45.0, rel=1e-12)
    check_both(m, params(v33_from=T0 + 12), full)
    check_both(m, params(v33_from=T0 + 13), half)


def test_v33_debt_below_2000_alone_gives_the_full_close_factor():
    # collateral $2,030 (>= $2,000), debt $1,975 (< $2,000): HF = .95 * 2030 / 1975 = 0.97646 > 0.95.
    # "collateral < $2,000 OR debt < $2,000" -> 100 %: repay 90, seize 90 * 1.01 / P = 186.70 < 190 tokens.
    # (Were it "and", 50 % = 45 would leave $987.5 of debt < $1,000 and be shrunk to 90 - 1000 / U.)
    # The other single clause (collateral < $2,000 with debt >= $2,000) cannot have HF > 0.95 (it needs
    # collateral > debt / LT x 0.95 > debt), so below 0.95 it is 100 % anyway.
    m, P, U = usd_market(2030.0, 1975.0)
    assert 190 * P * .95 / 90 == pytest.approx(.95 * 2030 / 1975, rel=1e-12)

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1
        assert -ev["debt"][0] == pytest.approx(90.0, rel=1e-12)
        assert -ev["coll"][0] == pytest.approx(90 * 1.01 / P, rel=1e-12)
        assert out.summaries[0]["end_debt"] == 0.0
    check_both(m, params(v33_from=0), fn)


def test_v33_both_above_2000_keeps_50_percent():
    # collateral $4,200, debt $4,000: HF = .95 * 4200 / 4000 = 0.9975 -> 50 %: repay 45 ($2,000 left),
    # seize 45 * 1.01 / P ($2,020), $2,180 of collateral left: both leftovers >= $1,000, no shrink.
    # After: HF = 2180 * .95 / 2000 = 1.0355 -> one liquidation.
    m, P, U = usd_market(4200.0, 4000.0)

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1
        assert -ev["debt"][0] == pytest.approx(45.0, rel=1e-12)
        assert ev["hf"][0] == pytest.approx(2180 * .95 / 2000, rel=1e-12)
    check_both(m, params(v33_from=0), fn)


def test_v33_leftover_debt_clause_shrinks_the_repay():
    # a close factor of 0.8 (market.close_factor) on collateral $4,700 / debt $4,500 (HF .95 * 4700 / 4500 =
    # 0.99222): repaying $3,600 leaves $900 of debt < $1,000, while the collateral left, 4700 - 3600 * 1.01 =
    # $1,064, passes (only the debt clause fails). The largest passing repay leaves exactly $1,000 of debt:
    # r1 = 90 - 1000 / U ($3,500); the collateral clause allows (4700 - 1000) / 1.01 = $3,663.4, so r1 binds.
    # After: collateral 4700 - 3535 = $1,165, debt $1,000, HF = 1165 * .95 / 1000 = 1.10675 -> stop.
    m, P, U = usd_market(4700.0, 4500.0)
    assert 4700 - 3600 * 1.01 >= 1000 and 4500 * 0.2 < 1000

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1
        assert -ev["debt"][0] == pytest.approx(90 - 1000 / U, rel=1e-12)
        assert out.summaries[0]["end_debt"] * U == pytest.approx(1000.0, rel=1e-12)
        assert ev["hf"][0] == pytest.approx(1165 * .95 / 1000, rel=1e-12)
    check_both(m, params(v33_from=0, cf_ovr=0.8), fn)

    def before_v33(out):                  # v3.2: the 0.8 override repays 72, no leftover rule
        assert -liq_events(out)["debt"][0] == pytest.approx(72.0, rel=1e-12)
    check_both(m, params(cf_ovr=0.8), before_v33)


def test_v33_leftover_collateral_clause_shrinks_the_repay():
    # collateral $2,100, debt $2,040: HF = .95 * 2100 / 2040 = 0.97794 -> 50 %: repay $1,020 leaves $1,020 of
    # debt (passes) but seizes $1,030.2, leaving $1,069.8 of collateral (passes): no shrink. With LB 1.10
    # (bonus 10 %): seizes $1,122, leaves $978 < $1,000 -> r2 = (2100 - 1000) / 1.1 = $1,000 (r1 = $1,040):
    # repay 1000 / U, leaving exactly $1,000 of collateral.
    m, P, U = usd_market(2100.0, 2040.0, bonus=0.10)

    def fn(out):
        ev = liq_events(out)
        assert -ev["debt"][0] == pytest.approx((2100 - 1000) / 1.1 / U, rel=1e-12)
        assert (190 + ev["coll"][0]) * P * U == pytest.approx(1000.0, rel=1e-12)
    check_both(m, params(v33_from=0), fn)


def test_v33_deficit_written_off_when_the_collateral_runs_out():
    # P = 0.47, ETH $3,000: HF 0.9426 <= 0.95 -> 100 %; 90 * 1.01 / .47 = 193.4 > 190: all seized, repay
    # 190 * .47 / 1.01 = 88.41584, the 1.58416 left is the reserve's deficit (bad debt)
    m = market([1.0, 0.47, 0.47])

    def fn(out):
        s = out.summaries[0]
        assert s["bad_debt"] == pytest.approx(90 - 190 * .47 / 1.01, rel=1e-10)
        assert s["end_debt"] == 0.0 and (out.events[0]["kind"] == EVENT_KINDS["bad_debt"]).sum() == 1
    check_both(m, params(v33_from=0), fn)


# --- interest: the binomial's cubic term --------------------------------------------------------------
@pytest.mark.parametrize("rate, dt", [(0.5, 30 * DAY), (2.0, 7 * DAY), (1.0, 90 * DAY)])
def test_borrow_index_cubic_term_is_visible_over_long_steps(rate, dt):
    # one step of dt seconds at `rate`: x = rate / Y per second,
    # growth = 1 + x t + t(t-1) x^2 / 2 + t(t-1)(t-2) x^3 / 6 (MathUtils.calculateCompoundedInterest).
    # 50 % over 30 days: x t = 0.0411, cubic (x t)^3 / 6 = 1.16e-5 relative; 200 % over 7 days: 9.4e-6;
    # 100 % over 90 days: 2.5e-3 (debt 90 -> 114.8, HF still 1.57). Dropping it moves the debt by far more than the 1e-12 asserted.
    m = market(np.ones(2), borrow_apr=rate, dt=dt)
    x, t = rate / Y, float(dt)
    quad = 1 + x * t + t * (t - 1) * x * x / 2
    g = quad + t * (t - 1) * (t - 2) * x ** 3 / 6
    assert (g - quad) / g > 5e-6

    def fn(out):
        s = out.summaries[0]
        assert s["end_debt"] == pytest.approx(90 * g, rel=1e-12)
        assert s["interest_paid"] == pytest.approx(90 * (g - 1), rel=1e-10)
    check_both(m, params(), fn)


# --- oracle modes ------------------------------------------------------------------------------------
def test_chainlink_oracle_reads_the_feed():
    # DEX price 1 and rate 1 throughout; the feed says 0.9 at block 1: HF = 190 * .9 * .95 / 90 = 1.9
    m = market(np.ones(3), oracle_feed=np.array([1.0, 0.9, 1.0]))

    def feed(out):
        assert out.summaries[0]["min_hf"] == pytest.approx(190 * .9 * .95 / 90, rel=1e-12)
        assert out.summaries[0]["min_hf_idx"] == 1

    def dex(out):
        assert out.summaries[0]["min_hf"] == pytest.approx(190 * .95 / 90, rel=1e-12)
    check_both(m, params(), feed, oracle="chainlink")
    check_both(m, params(), dex, oracle="market")


def _capo_market(rate_from_day20):
    # daily blocks from a multiple of 14 days; the rate is 1.0, then rate_from_day20 from day 20
    t0 = 14 * DAY * 1500
    xr = np.where(np.arange(30) >= 20, rate_from_day20, 1.0)
    return market(np.ones(30), xrate=xr, t0=t0, dt=DAY), t0


@pytest.mark.parametrize("age_days, dt_days", [(7, 13), (14, 20)])
def test_capo_cap_grows_from_a_snapshot_at_least_age_old(age_days, dt_days):
    # at day 20 the rate jumps to 1.10. snapshot time = floor(ts / age) age - age:
    # age 7 d: t0 + 14 d - 7 d = t0 + 7 d -> dt = 13 d; age 14 d: t0 + 14 d - 14 d = t0 -> dt = 20 d.
    # The snapshot rate is 1.0 either way: oracle = min(1.10, 1.0 * (1 + .0968 * dt / 365))
    m, t0 = _capo_market(1.10)
    cap = 1.0 * (1 + 0.0968 * dt_days / 365)

    def fn(out):
        assert out.records[0, 20, 6] == pytest.approx(cap, rel=1e-12)    # oracle_price column
        assert out.summaries[0]["min_hf"] == pytest.approx(190 * .95 / 90, rel=1e-12)
    check_both(m, params(), fn, oracle="capo", capo=(0.0968, age_days * DAY), record=0)


def test_capo_passes_a_rate_below_the_cap():
    # rate 1.002 from day 20 < cap 1.0034477 (age 7 d, dt 13 d): the oracle is the rate itself
    m, t0 = _capo_market(1.002)
    assert 1.002 < 1 + 0.0968 * 13 / 365

    def fn(out):
        assert out.records[0, 20, 6] == 1.002
    check_both(m, params(), fn, oracle="capo", capo=(0.0968, 7 * DAY), record=0)


# --- the withdrawal queue ------------------------------------------------------------------------------
def _queue(delay, late_delay=0, late_from=0, dt=3600, n=40):
    # lend (no debt), the DEX price falls to 0.95 < 0.99 x rate at block 1: the exit queues every token at
    # the rate; the release comes at the first block with ts >= request ts + delay
    px = np.ones(n)
    px[1:] = 0.95
    m = market(px, t0=T0, dt=dt)
    return m, params(kind="lend", exit_on=1, depeg_below=0.99, exit_route=EXIT_ROUTES["queue"],
                     queue_delay=delay, queue_delay_late=late_delay, queue_late_from=late_from)


def _release_idx(out):
    ev = out.events[0]
    return [int(i) for i in ev["idx"][ev["kind"] == REL]]


def test_queue_releases_at_request_plus_delay_not_earlier():
    # request at block 1 (T0 + 1 h), delay 5 h -> released at block 6 (T0 + 6 h), 100 WETH back in cash;
    # the equity before (block 5) counts the queued 100 at the rate
    m, p = _queue(5 * 3600)

    def fn(out):
        assert _release_idx(out) == [6]
        assert out.summaries[0]["end_cash"] == pytest.approx(100.0, rel=1e-12)
    check_both(m, p, fn)
    m2, p2 = _queue(5 * 3600 + 1)          # one second more: the next block, 7

    def later(out):
        assert _release_idx(out) == [7]
    check_both(m2, p2, later)


def test_lrt_queue_delay_is_7_days_before_and_14_from_its_date():
    # daily blocks, request at block 1 (T0 + 1 d). late_from = T0 + 1 d (request at/after it): 14 d -> block 15;
    # late_from = T0 + 1 d + 1 s (request before it): 7 d -> block 8
    m, p = _queue(7 * DAY, 14 * DAY, T0 + DAY, dt=DAY, n=20)
    m2, p2 = _queue(7 * DAY, 14 * DAY, T0 + DAY + 1, dt=DAY, n=20)

    def late(out):
        assert _release_idx(out) == [15]

    def early(out):
        assert _release_idx(out) == [8]
    check_both(m, p, late)
    check_both(m2, p2, early)


# --- the venues' lines, exactly at them -----------------------------------------------------------------
def _at_line(protocol, lt, bonus):
    # flash loan to LTV 0.5 at rate 1: F = 1, collateral 2 tokens, debt 1 WETH (exact). With the line at
    # LT = 0.5: 2 x 1 x 0.5 = 1 = debt exactly at block 1 (healthy: "unhealthy" is strictly below);
    # at block 2 the price 0.999 puts it below: liquidated there.
    m = market([1.0, 1.0, 0.999], ltv=lt, lt=lt, bonus=bonus, pfee=0.0)
    return m, params(protocol=protocol, kind="flash-loan", target_ltv=0.5, capital=1.0)


def test_morpho_exactly_at_the_lltv_is_healthy():
    m, p = _at_line("morpho-blue", 0.5, 0.0)
    lif = min(1.15, 1 / (0.3 * 0.5 + 0.7))         # 1.17647 -> capped at 1.15

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1 and ev["idx"][0] == 2
        assert -ev["debt"][0] == pytest.approx(1.0, rel=1e-12)      # no close factor: all of it
        assert -ev["coll"][0] == pytest.approx(1.0 * lif / 0.999, rel=1e-12)
    check_both(m, p, fn)


def test_comet_exactly_at_the_liquidate_cf_is_not_absorbed():
    m, p = _at_line("compound-v3", 0.5, 0.05)

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1 and ev["idx"][0] == 2
        # absorb at block 2: credit = 2 x 0.999 x 0.95 = 1.8981 > debt 1: excess 0.8981 to cash
        assert out.summaries[0]["end_cash"] == pytest.approx(2 * 0.999 * 0.95 - 1.0, rel=1e-12)
    check_both(m, p, fn)
