"""Aave v4 (Hub & Spoke): the venue's rules in plain Python, the readable spec of ext/venues/_aave_v4.pxd.

Source: aave/aave-v4 at commit 8e6ea169 (``src/spoke/libraries/LiquidationLogic.sol``, ``src/spoke/Spoke.sol``,
``src/spoke/libraries/UserPositionDebt.sol``), ``src/hub/libraries/AssetLogic.sol`` and
``src/libraries/math/MathUtils.sol`` as stored, and ``docs/overview.md`` (aave.com/docs/aave-v4); PROTOCOLS.md
section "Aave v4". The contracts work in integers (bps, WAD, RAY) with directed rounding; this spec works in
doubles and does not reproduce that rounding (a few units in the 18th digit of each amount).

Units. Amounts are in tokens (collateral) and debt-asset units (debt); values are in the Spoke's base
currency, USD, as the Spoke's oracle gives it (``ORACLE_DECIMALS = 8``; a value is amount x price x 1e18 /
unit, "USD with 26 decimals", so ``DUST_LIQUIDATION_THRESHOLD = 1000e26`` is $1,000). A price is USD per
token: ``p_coll`` = collateral, ``p_debt`` = debt asset (the engine's eth_usd x oracle price and eth_usd).

Rules (one collateral reserve and one debt reserve unless said otherwise):
- Health factor (Spoke._processUserAccountData): HF = sum(CF_i x collateral value_i) / total debt value over
  the collaterals with CF > 0; no debt: HF = inf. Liquidatable when HF < 1 (HEALTH_FACTOR_LIQUIDATION_THRESHOLD
  = 1e18). There is no LTV: a borrow or withdraw must leave HF >= 1 (_refreshAndValidateUserAccountData), so
  CF is both the borrow limit and the liquidation line.
- Bonus (LiquidationLogic.calculateLiquidationBonus): LB = maxLB when HF <= healthFactorForMaxBonus, else
  minLB + (maxLB - minLB) x (1 - HF) / (1 - healthFactorForMaxBonus), minLB = 1 + (maxLB - 1) x
  liquidationBonusFactor (the docs' "factor x maxLB" is loose wording: the code scales the bonus above 1).
- Debt to target (_calculateDebtToTargetHealthFactor): total debt value x (HF_target - HF) /
  ((HF_target - LB x CF) x p_debt), in debt-asset units, rounded up on chain. CF is the seized reserve's.
- Debt to liquidate (_calculateDebtToLiquidate): min(debt balance, offered, debt to target); if less than
  $1,000 of this reserve's debt would remain, all of it (the target HF is bypassed).
- Collateral (_calculateLiquidationAmounts), after the debt rules: seized = repaid x p_debt x LB / p_coll.
  If seized > the collateral balance, or it leaves < $1,000 of this collateral while this debt is not fully
  repaid, all the collateral is seized and repaid = balance x p_coll / (p_debt x LB) (rounded up): lower in
  the first case (debt may remain), higher by at most $1,000 in the second. If the offered amount is below the
  repaid amount so found, the call reverts (MustNotLeaveDust): no liquidation.
- Fee: fee tokens = seized x liquidationFee x (LB - 1) / LB = (seized - seized / LB) x fee, paid to the Hub's
  fee receiver as shares; the liquidator gets seized - fee (its bonus net of the fee).
- Deficit (_evaluateDeficit, Spoke._reportDeficit): when the seized collateral reserve is empty, the user has no
  other active collateral and debt remains (on this or another reserve), all the remaining debt is reported as
  a deficit of the Hub and cleared from the user.
- Drawn index (AssetLogic.getDrawnIndex, MathUtils.calculateLinearInterest): index x (1 + drawn rate x dt / Y)
  at each accrual, Y = 365 days: linear between accruals, compounded across them (at most once per block).
- Risk premium (Spoke._processUserAccountData): collaterals sorted by collateral risk ascending (then value
  descending) cover the total debt value in turn; RP = sum(risk_i x covered value_i) / covered value. Collateral
  risk is 0..1000 % (MAX_ALLOWED_COLLATERAL_RISK = 1000_00 bps). With one collateral, RP = its risk.
- Premium debt (UserPositionDebt, Hub Premium): premium shares = drawn shares x RP, premium = premium shares x
  index - premium offset. A refresh (borrow, withdraw, repay, liquidationCall, setUsingAsCollateral,
  updateUserRiskPremium; not supply, not a price move) re-sets the shares from the drawn shares and the new RP
  and moves the offset so the accrued premium is unchanged. So between refreshes the debt grows by drawn
  shares x (1 + RP) x the index growth: the borrow rate is drawn rate x (1 + RP) on the drawn part, and the
  accrued premium earns no interest itself. (docs/overview.md lists repay among actions that do not refresh;
  the Spoke.sol read here refreshes on repay; the two agree everywhere else.)
- Repay and liquidation restore the premium first, then the drawn debt (Spoke._calculateRestoreAmount,
  LiquidationLogic._liquidateDebt); a deficit zeroes both and RP.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from backtest.errors import ConfigError

PROTOCOL = "aave-v4"
SECONDS_PER_YEAR = 365 * 24 * 3600            # MathUtils.SECONDS_PER_YEAR
HF_LIQUIDATION_THRESHOLD = 1.0                # LiquidationLogic.HEALTH_FACTOR_LIQUIDATION_THRESHOLD = 1e18
DUST_LIQUIDATION_THRESHOLD_USD = 1000.0       # LiquidationLogic.DUST_LIQUIDATION_THRESHOLD = 1000e26
MAX_COLLATERAL_RISK = 10.0                    # Spoke.MAX_ALLOWED_COLLATERAL_RISK = 1000_00 bps
NEEDS = ("eth_usd",)   # market series beyond the common ones: USD per debt-asset unit (the $1,000 rules)

# ---------------------------------------------------------------------------------------------- config
#: [market] keys of the venue: (meaning, default). The defaults describe a wstETH / WETH ETH-correlated
#: spoke (Aave's Lido e-Spoke). No deployed value of that spoke was found in the stored sources, so every
#: default is a documented example value, labelled with where it comes from.
KEYS: dict[str, tuple[str, float]] = {
    "collateral_factor": (
        "CF of the collateral reserve, in [0, 1): HF weight and borrow limit (v4 has no separate LTV). "
        "Example: 0.955, the liquidation threshold of the Aave v3 Lido instance's wstETH/WETH E-mode "
        "(bgd-labs/aave-proposals-v3 LidoEthereumInstanceActivation.md), the role v4 gives CF", 0.955),
    "max_liquidation_bonus": (
        "maxLiquidationBonus - 1, a fraction (0.01 = 101_00 bps): the bonus at or below "
        "health_factor_for_max_bonus. Example: 0.01, that E-mode's liquidation bonus (same source)", 0.01),
    "liquidation_bonus_factor": (
        "share of the max bonus paid just below HF 1, in [0, 1]: minLB = 1 + max bonus x factor. "
        "Example: 0.8, the value docs/overview.md uses (\"a factor of 80_00\")", 0.8),
    "health_factor_for_max_bonus": (
        "HF at or below which the max bonus is paid, in [0, 1). Example: 0.95, as in aave-v4's own "
        "liquidation tests (targetHealthFactor 1.05e18, healthFactorForMaxBonus 0.95e18)", 0.95),
    "target_health_factor": (
        "HF a liquidation restores, >= 1. Example: 1.05 (aave-v4 tests; aave-dao/aave-v4-risk-stewards "
        "scripts/examples/EthereumExample.sol sets 1.05e18 on the Main Spoke)", 1.05),
    "liquidation_fee": (
        "protocol's share of the bonus, in [0, 1]. Example: 0.10, as docs/overview.md's example (10_00) and "
        "the Aave v3 liquidation protocol fee of wstETH", 0.10),
    "collateral_risk": (
        "collateral risk of the reserve, in [0, 10] (0..1000 %): the user risk premium with one collateral; "
        "the borrow rate is the drawn rate x (1 + premium). Example: 0.18, the value "
        "aave-dao/aave-v4-risk-stewards scripts/examples/EthereumExample.sol sets for wstETH on the Lido "
        "e-Spoke (an example payload, not a record of the deployed value)", 0.18),
}
DEFAULTS: dict[str, float] = {k: v for k, (_, v) in KEYS.items()}


@dataclass(frozen=True)
class Spoke:
    """The resolved risk parameters of one collateral reserve on one Spoke (fractions, not bps)."""
    collateral_factor: float
    max_liquidation_bonus: float
    liquidation_bonus_factor: float
    health_factor_for_max_bonus: float
    target_health_factor: float
    liquidation_fee: float
    collateral_risk: float

    @property
    def max_lb(self) -> float:
        """maxLiquidationBonus as a multiplier (1.01)."""
        return 1.0 + self.max_liquidation_bonus


def problems(values: Mapping[str, float]) -> list[tuple[str, str]]:
    """(key, why) for each impossible value, in KEYS order; the rules of Spoke.updateLiquidationConfig,
    _validateDynamicReserveConfig and _validateReserveConfig, plus CF > 0 (a CF of 0 is no collateral)."""
    out: list[tuple[str, str]] = []

    def bad(key: str, why: str) -> None:
        out.append((key, f"market.{key} = {values[key]!r}: {why}"))

    for key in KEYS:
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            bad(key, "must be a number")
    if out:
        return out
    cf, mb = values["collateral_factor"], values["max_liquidation_bonus"]
    if not 0.0 < cf < 1.0:
        bad("collateral_factor", "must be in (0, 1): 1 would let the debt equal the collateral's value, 0 "
                                 "makes the reserve no collateral")
    if not 0.0 <= mb:
        bad("max_liquidation_bonus", "must be >= 0 (it is maxLiquidationBonus - 1, and maxLiquidationBonus "
                                     ">= 100_00)")
    elif 0.0 < cf < 1.0 and not (1.0 + mb) * cf < 1.0:
        bad("max_liquidation_bonus", f"(1 + max bonus) x collateral_factor = {(1.0 + mb) * cf:.6g} must be "
                                     f"below 1, or a liquidation could not restore the position")
    if not 0.0 <= values["liquidation_bonus_factor"] <= 1.0:
        bad("liquidation_bonus_factor", "must be in [0, 1]")
    if not 0.0 <= values["health_factor_for_max_bonus"] < 1.0:
        bad("health_factor_for_max_bonus", "must be in [0, 1) (below the liquidation threshold 1)")
    t = values["target_health_factor"]
    if not (1.0 <= t < math.inf):
        bad("target_health_factor", "must be >= 1 (a liquidation restores at least the threshold) and finite")
    if not 0.0 <= values["liquidation_fee"] <= 1.0:
        bad("liquidation_fee", "must be in [0, 1]")
    if not 0.0 <= values["collateral_risk"] <= MAX_COLLATERAL_RISK:
        bad("collateral_risk", "must be in [0, 10] (0 to 1000 %, Spoke.MAX_ALLOWED_COLLATERAL_RISK)")
    return out


def resolve(table: Mapping[str, float]) -> Spoke:
    """The Spoke parameters from a [market] table (defaults for the missing keys); ConfigError on the first
    impossible value, naming its key."""
    unknown = sorted(k for k in table if k not in KEYS)
    if unknown:
        raise ConfigError(f"market.{unknown[0]}: not an aave-v4 key; the venue takes {', '.join(KEYS)}")
    values = {**DEFAULTS, **table}
    found = problems(values)
    if found:
        raise ConfigError(found[0][1])
    return Spoke(**{k: float(values[k]) for k in KEYS})


# ---------------------------------------------------------------------------------------------- rules
def health_factor(coll: float, p_coll: float, cf: float, debt: float, p_debt: float) -> float:
    """HF of one collateral against one debt: coll value x CF / debt value (inf without debt)."""
    if debt <= 0.0:
        return math.inf
    return coll * p_coll * cf / (debt * p_debt)


def liquidation_bonus(hf: float, max_lb: float, bonus_factor: float, hf_for_max_bonus: float) -> float:
    """LB (a multiplier >= 1) at health factor hf < 1."""
    if hf <= hf_for_max_bonus:
        return max_lb
    min_lb = (max_lb - 1.0) * bonus_factor + 1.0
    return min_lb + (max_lb - min_lb) * (1.0 - hf) / (1.0 - hf_for_max_bonus)


def debt_to_target(total_debt_value: float, hf: float, target_hf: float, lb: float, cf: float,
                   p_debt: float) -> float:
    """Debt-asset units to repay (seizing CF-weighted collateral at LB) so that HF becomes target_hf."""
    return total_debt_value * (target_hf - hf) / ((target_hf - lb * cf) * p_debt)


@dataclass(frozen=True)
class Liquidation:
    """One liquidationCall: what the borrower loses and keeps (tokens and debt-asset units)."""
    repaid: float           # debt restored by the liquidator
    seized: float           # collateral taken from the borrower
    fee: float              # of the seized, the tokens paid to the protocol
    to_liquidator: float    # seized - fee
    coll_after: float
    debt_after: float
    deficit: float          # debt cleared from the borrower with no collateral left (0 if none)
    hf: float               # health factor before
    lb: float               # the bonus applied


def liquidate(coll: float, debt: float, p_coll: float, p_debt: float, sp: Spoke,
              offered: float = math.inf, other_collateral: bool = False, hf: float | None = None,
              total_debt_value: float | None = None) -> Liquidation | None:
    """One liquidationCall seizing ``coll`` tokens of one collateral reserve and repaying ``debt`` of one debt
    reserve; None when the position is healthy or the call would revert. By default these are the user's only
    reserves; for an account with more, pass its ``hf`` and ``total_debt_value`` (USD, all debts) and
    ``other_collateral`` (another collateral with CF > 0 is left, so an empty reserve is no deficit)."""
    cf = sp.collateral_factor
    if hf is None:
        hf = health_factor(coll, p_coll, cf, debt, p_debt)
    if total_debt_value is None:
        total_debt_value = debt * p_debt
    if not hf < HF_LIQUIDATION_THRESHOLD or coll <= 0.0 or debt <= 0.0 or offered <= 0.0:
        return None
    lb = liquidation_bonus(hf, sp.max_lb, sp.liquidation_bonus_factor, sp.health_factor_for_max_bonus)
    # the debt rules first: the least of the balance, the offer and the debt to target; all of it if less
    # than $1,000 would remain
    repaid = min(debt, offered)
    to_target = debt_to_target(total_debt_value, hf, sp.target_health_factor, lb, cf, p_debt)
    if to_target < repaid:
        repaid = to_target
    if repaid < debt and (debt - repaid) * p_debt < DUST_LIQUIDATION_THRESHOLD_USD:
        repaid = debt
    # then the collateral: capped at the balance, and all of it rather than a dust remainder
    seized = repaid * p_debt * lb / p_coll
    coll_dust = seized < coll and (coll - seized) * p_coll < DUST_LIQUIDATION_THRESHOLD_USD
    if seized > coll or (coll_dust and repaid < debt):
        seized = coll
        repaid = coll * p_coll / (p_debt * lb)
    if offered < repaid:
        return None                                        # MustNotLeaveDust: the call reverts
    fee = seized * sp.liquidation_fee * (lb - 1.0) / lb
    coll_after = coll - seized
    debt_after = debt - repaid
    deficit = 0.0
    if coll_after == 0.0 and not other_collateral and debt_after > 0.0:
        deficit = debt_after
        debt_after = 0.0
    return Liquidation(repaid, seized, fee, seized - fee, coll_after, debt_after, deficit, hf, lb)


def user_risk_premium(collaterals: Sequence[tuple[float, float]], total_debt_value: float) -> float:
    """RP from (value, collateral risk) pairs of the collaterals with CF > 0: the lowest-risk ones (then the
    largest) cover the debt value first; RP is the value-weighted risk of what covers it (0 without debt)."""
    order = sorted(range(len(collaterals)), key=lambda i: (collaterals[i][1], -collaterals[i][0]))
    left = total_debt_value
    weighted = 0.0
    for i in order:
        if left <= 0.0:
            break
        value, risk = collaterals[i]
        used = min(value, left)
        weighted += used * risk
        left -= used
    covered = total_debt_value - left
    return weighted / covered if covered > 0.0 else 0.0


def borrow_rate(drawn_rate: float, risk_premium: float) -> float:
    """APR at which the drawn part of a user's debt grows: the Hub's drawn rate x (1 + RP)."""
    return drawn_rate * (1.0 + risk_premium)


def drawn_index_growth(drawn_rate: float, dt: float) -> float:
    """Factor on the Hub's drawn index over one accrual of dt seconds (linear interest, compounded by
    multiplying the index at each accrual)."""
    if dt <= 0.0:
        return 1.0
    return 1.0 + drawn_rate * dt / SECONDS_PER_YEAR


# --- premium accounting on shares (UserPositionDebt): the user's debt between and across refreshes -------
@dataclass(frozen=True)
class Debt:
    """A user's debt on one reserve as the Spoke stores it: drawn shares, premium shares, premium offset."""
    drawn_shares: float
    premium_shares: float
    premium_offset: float      # debt-asset units

    def drawn(self, index: float) -> float:
        return self.drawn_shares * index

    def premium(self, index: float) -> float:
        return self.premium_shares * index - self.premium_offset

    def total(self, index: float) -> float:
        return self.drawn(index) + self.premium(index)


def refresh(d: Debt, index: float, risk_premium: float, restored_premium: float = 0.0) -> Debt:
    """getPremiumDelta + applyPremiumDelta: premium shares from the drawn shares and the new RP, the offset
    moved so the premium left (accrued - restored) is unchanged."""
    premium_left = d.premium(index) - restored_premium
    shares = d.drawn_shares * risk_premium
    return Debt(d.drawn_shares, shares, shares * index - premium_left)


def draw(d: Debt, index: float, amount: float, risk_premium: float) -> Debt:
    """borrow: new drawn shares at the index, then a premium refresh at the (new) RP."""
    return refresh(Debt(d.drawn_shares + amount / index, d.premium_shares, d.premium_offset), index,
                   risk_premium)


def restore(d: Debt, index: float, amount: float, risk_premium: float) -> Debt:
    """repay / liquidation of ``amount``: the premium first, then the drawn debt; then a premium refresh.
    ``amount`` at or above the total clears the debt."""
    premium = d.premium(index)
    if amount >= d.total(index):
        return Debt(0.0, 0.0, 0.0)
    restored_premium = min(amount, premium)
    drawn_shares = d.drawn_shares - (amount - restored_premium) / index
    kept = Debt(drawn_shares, d.premium_shares, d.premium_offset)
    return refresh(kept, index, risk_premium, restored_premium)


# --- the venue's liquidation step on an engine's position (what aave_v4_liquidate does to State) ---------
@dataclass(frozen=True)
class Step:
    coll: float                     # collateral tokens after
    debt: Debt                      # the debt's shares after
    liquidation: Liquidation | None
    bad_debt: float                 # debt-asset units written off (no collateral left)


def liquidation_step(coll: float, debt: Debt, index: float, por: float, eth_usd: float, sp: Spoke,
                     dust: float = 0.0) -> Step:
    """One block's liquidation of a one-collateral, one-debt position: at most one liquidationCall (it
    restores the target HF, clears the debt or takes all the collateral), the liquidator offering the whole
    debt. Prices: por (collateral in debt-asset units) x eth_usd (USD per debt-asset unit). The repaid amount
    restores the premium first; the premium is then refreshed at the collateral risk (0 with nothing left).
    Balances at or below ``dust`` count as zero (the engines' relative dust); a debt left with no collateral
    is bad debt."""
    owed = debt.total(index)
    if owed <= dust or coll <= dust:
        return Step(coll, debt, None, 0.0)
    q = liquidate(coll, owed, por * eth_usd, eth_usd, sp)
    if q is None:
        return Step(coll, debt, None, 0.0)
    left = q.coll_after if q.coll_after > dust else 0.0
    rp = sp.collateral_risk if left > 0.0 else 0.0
    after = restore(debt, index, q.repaid, rp)
    owed = after.total(index)
    if left == 0.0 and owed > dust:
        return Step(0.0, Debt(0.0, 0.0, 0.0), q, owed)
    return Step(left, after, q, 0.0)


# ---------------------------------------------------------------------------------------------- the venue
# (the registry's record: config keys and rules, checks against the aligned market, rate model, engine fields)
from backtest.venues.base import NO_EMODE, Venue  # noqa: E402  (the rules above stand alone)

_NO_LTV = ("aave-v4 has no separate LTV or liquidation threshold: market.collateral_factor is both the borrow "
           "limit and the liquidation line; set it instead")
REFUSALS = {
    "emode": NO_EMODE,
    "ltv": _NO_LTV,
    "liquidation_threshold": _NO_LTV,
    "liquidation_bonus": ("aave-v4's bonus grows as HF falls: set market.max_liquidation_bonus, "
                          "market.liquidation_bonus_factor and market.health_factor_for_max_bonus"),
    "liquidation_protocol_fee": "aave-v4's protocol share of the bonus is market.liquidation_fee; set it instead",
    "close_factor": ("aave-v4 has no close factor: a liquidation repays what restores "
                     "market.target_health_factor"),
}
#: what the venue's own keys mean, told to a venue that does not take them
MEANINGS = {key: ("{key} is an Aave v4 Spoke parameter (market.protocol = \"aave-v4\"); {protocol} does not "
                  "take it") for key in KEYS}


def _rules(ctx, protocol: str, m: dict, table: Mapping, refuse) -> None:
    """No E-mode; the Spoke's parameters (defaults for the missing keys) checked by problems(); the market's
    ltv / liquidation_threshold are the collateral factor, its bonus the max bonus, its fee the liquidation
    fee (so the aligned market carries them); the rest is kept in MarketConfig.venue."""
    refuse()
    m["emode"] = None
    values = {**DEFAULTS, **{k: m.pop(k) for k in KEYS if k in m}}
    found = problems(values)
    if found:
        key, msg = found[0]
        shown = f"market.{key} = {values[key]!r}: "
        why = msg[len(shown):] if msg.startswith(shown) else msg
        raise ctx.fail(("market", key), why, table[key]) if key in table else ctx.fail(("market", key), why)
    sp = Spoke(**{k: float(values[k]) for k in KEYS})
    m["venue"] = tuple((k, float(values[k])) for k in KEYS)
    m["ltv"] = m["liquidation_threshold"] = sp.collateral_factor
    m["liquidation_bonus"] = sp.max_liquidation_bonus
    m["liquidation_protocol_fee"] = sp.liquidation_fee


def spoke_of(market_config) -> Spoke:
    """The resolved Spoke of a MarketConfig (its ``venue`` pairs)."""
    return Spoke(**dict(market_config.venue))


def _target_ltv_rule(ctx, market, target: float, strat_t: Mapping) -> None:
    cf = dict(market.venue)["collateral_factor"]
    if target >= cf:
        raise ctx.fail(("strategy", "target_ltv"),
                       f"must be below market.collateral_factor ({cf:g}): aave-v4 has no separate LTV and the "
                       f"position would open at or below HF 1", strat_t.get("target_ltv", target))


def check_target(cfg, market, coll: str) -> None:
    st, mk = cfg.strategy, cfg.market
    if st.kind not in ("loop", "flash-loan"):
        return
    cf0 = float(market.lt[0])
    if st.target_ltv >= cf0:
        raise ConfigError(
            f"strategy.target_ltv = {st.target_ltv} is at or above the collateral factor {cf0:g} of the aave-v4 "
            f"{coll}/{mk.debt} reserve at the start: the position would open liquidatable; lower it or set "
            f"market.collateral_factor"
        )


def _check_market(market) -> None:
    """The $1,000 rules and the Spoke's USD values need USD per debt-asset unit at every block."""
    import numpy as np

    from backtest.errors import DataError

    bad = ~np.isfinite(market.eth_usd) | (market.eth_usd <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"market series eth_usd (USD per debt-asset unit): missing or non-positive at ts "
                        f"{int(market.ts[i])} (block {int(market.block[i])}); aave-v4 values positions in USD "
                        f"(its $1,000 liquidation rules): add a USD price series for the debt asset to the lake")


#: the Spoke's per-configuration keys -> their Params fields (the user risk premium: with one collateral, its
#: collateral risk); CF, max bonus and fee are the aligned market's lt, bonus and pfee
PARAMS_FIELDS = {"liquidation_bonus_factor": "v4_bonus_factor", "health_factor_for_max_bonus": "v4_hf_max_bonus",
                 "target_health_factor": "v4_target_hf", "collateral_risk": "v4_collateral_risk"}


#: the Spoke's per-reserve parameters in the market's columns: CF = lt (= ltv), max bonus = bonus, fee = pfee
RISK_FIELDS = {"collateral_factor": lambda m: m.lt, "max_liquidation_bonus": lambda m: m.bonus,
               "liquidation_fee": lambda m: m.pfee}


def _encode(market_config) -> dict[str, float]:
    sp = spoke_of(market_config)
    return {f: getattr(sp, key) for key, f in PARAMS_FIELDS.items()}


def _defaults(asset: str, emode, debt: str) -> list:
    """The example Spoke's CF (as ltv and lt), max bonus and fee, for any collateral (KEYS says their sources);
    a config's keys replace them (the aligned market then holds the config's values)."""
    cf = DEFAULTS["collateral_factor"]
    return [(0, cf, cf, DEFAULTS["max_liquidation_bonus"], DEFAULTS["liquidation_fee"])]


def reference_liquidation(replay, b: int) -> None:
    """The reference engine's step 4 on Aave v4 (backtest.reference.Replay, whose position is a
    PremiumDebtPosition): one liquidationCall by liquidation_step, booked as the kernel's aave_v4_liquidate
    books it. The Spoke: CF = lt, max bonus = bonus, fee = pfee at b (the aligned market), the rest the
    configuration's (Settings.venue)."""
    m, r, pos = replay.m, replay.risk, replay.pos
    sp = Spoke(collateral_factor=float(r["collateral_factor"][b]), max_liquidation_bonus=float(r["max_liquidation_bonus"][b]),
               liquidation_fee=float(r["liquidation_fee"][b]), **replay.s.venue)
    pc = replay.oracle_price(b)
    step = liquidation_step(pos.coll, pos.v4, pos.idx, pc, float(m.eth_usd[b]), sp, replay.dust)
    q = step.liquidation
    if q is None:
        return
    pos.coll = step.coll
    # the debt left: the step's, or (no collateral left) the bad debt, held as a bare amount (offset -bad:
    # total = bad exactly) until it is written off, so the liquidation's event sees it as the core does
    pos.v4 = step.debt if step.bad_debt == 0.0 else Debt(0.0, 0.0, -step.bad_debt)
    replay.tidy()
    penalty = replay.book_liquidation(q.seized, pc, q.repaid, q.fee * pc)
    replay.event(b, "liquidation", -q.seized, -q.repaid, penalty)
    if step.bad_debt > 0.0:
        replay.write_off(b)


AAVE_V4 = Venue("aave-v4", takes=("supply_rate",), refusals=REFUSALS, meanings=MEANINGS, own_keys=KEYS,
                per_config_keys=("liquidation_bonus_factor", "health_factor_for_max_bonus", "target_health_factor",
                                 "collateral_risk"),
                rules=_rules, target_ltv_rule=_target_ltv_rule, defaults=_defaults,
                default_keys="market.collateral_factor / max_liquidation_bonus / liquidation_fee",
                growth=("linear", "linear"), needs_usd=True, check_target=check_target,
                check_market=_check_market, liquidation=reference_liquidation, premium_debt=True,
                one_collateral=("aave-v4 is modelled with one collateral reserve (the risk premium sorts "
                                "several by collateral risk, not modelled yet): one [[strategy.collateral]] only"),
                encode=_encode, params_fields=PARAMS_FIELDS, risk_fields=RISK_FIELDS)
VENUES = (AAVE_V4,)
