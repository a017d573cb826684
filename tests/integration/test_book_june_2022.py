"""`backtest book --window june-2022` on real history: what each strategy did in the de-peg.

Twice: on the bundled lake (data/, what a user gets out of the box) and on a lake imported here from
../shared/data as README's "Real data" section does (CoinGecko stETH/USD and WETH/USD, the derived stETH/WETH
ratio with Lido's assumed 4 % rebase, Etherscan's gas and ETH/USD) plus the Curve pool's balances and its
virtual price as steCRV/ETH exchange rates (the csv importer with a mapping). The imported variant is skipped only when ../shared/data is absent.
"""
from pathlib import Path

import polars as pl
import pytest

from tests.pins import SHARED

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["bundled", "imported"])
def book_2022(request, tmp_path_factory):
    from backtest.book import book

    root = tmp_path_factory.mktemp("book22")
    if request.param == "bundled":
        return book("june-2022", 1000.0, str(REPO / "data"), str(root / "out")), root / "out" / "book"
    if not SHARED.is_dir():
        pytest.skip("needs ../shared/data")
    from backtest.data.derive import derive_ratio
    from backtest.data.sources.csv_mapping import import_csv
    from backtest.data.sources.curve import import_curve
    from backtest.data.sources.registry import import_files

    lk = root / "lake"
    cg, es = SHARED / "coingecko-steth-weth-hourly", SHARED / "etherscan-daily"
    import_files("coingecko", [cg / "stETH_usd.csv", cg / "WETH_usd.csv"], lk)
    derive_ratio(lk, "stETH", "WETH", rebase_apr=0.04)
    import_files("etherscan", [es / "export-AvgGasPrice.csv", es / "export-EtherPrice.csv"], lk)
    curve = SHARED / "curve-steth-pool-balances-2021-2022" / "stETH.csv"
    import_curve(curve, lk, amp=50.0)
    import_csv(curve, lk, "exchange_rates", ["ts=UNIX TimeStamp:s", "rate=Virtual Price:e18"],
               {"token": "steCRV", "underlying": "ETH"})
    with pytest.warns(Warning):      # CoinGecko's 2022-06-13 WETH/USD print, let through by run.allow
        frame = book("june-2022", 1000.0, str(lk), str(root / "out"))
    return frame, root / "out" / "book"


def row(frame: pl.DataFrame, strategy: str) -> dict:
    return frame.filter(pl.col("strategy") == strategy).row(0, named=True)


def test_the_lp_share_went_mostly_steth(book_2022):
    frame, _ = book_2022
    lp = row(frame, "lp")
    assert lp["status"] == "replayed"
    # SOURCE.md: the pool's stETH share rose from ~0.50 in spring to ~0.81 on 2022-06-21
    assert lp["max_lst_share"] > 0.78
    assert lp["lst_share_at_min"] > 0.6          # at its lowest the share was mostly the de-pegged coin
    assert lp["impermanent_loss"] < 0            # the share lost against holding the deposit's coins
    assert lp["fee_income"] > 0                  # the virtual price still grew
    assert "2022-06-22" in lp["notes"]           # the pool's rows end there, and the row says so


def test_the_market_oracle_loop_was_liquidated(book_2022):
    loop = row(book_2022[0], "loop")
    assert loop["status"] == "replayed" and loop["liquidations"] >= 1
    assert loop["realized_apy"] < row(book_2022[0], "hold-lst")["realized_apy"]


def test_holding_steth_lost_its_discount(book_2022):
    hold = row(book_2022[0], "hold-lst")
    assert hold["status"] == "replayed" and hold["liquidations"] == 0
    assert hold["realized_apy"] < 0.03           # below the advertised 3-5 %: stETH ended under its 2 May price
    assert hold["verdict"] == "below"


def test_the_vault_charged_its_fees_through_the_depeg(book_2022):
    v = row(book_2022[0], "vault")
    assert v["status"] == "replayed" and v["liquidations"] == 0
    assert v["management_fee_paid"] > 0                  # 2 %/yr on assets, every block
    assert v["realized_apy"] < row(book_2022[0], "hold-lst")["realized_apy"]   # fees and gas on top of holding


def test_strategies_without_2022_history_are_rows_that_say_so(book_2022):
    frame, out = book_2022
    assert frame.height == 9
    for s in ("hold-lrt", "basket", "restake-lrt", "farm"):
        assert row(frame, s)["status"].startswith("not replayed: no june-2022 config")
    # every replayed row names its result set, a folder of ours with the same ending value
    for r in frame.filter(pl.col("status") == "replayed").iter_rows(named=True):
        summary = pl.read_parquet(Path(r["result_set"]) / "summary.parquet")
        col = "end_value" if "end_value" in summary.columns else "end_equity"
        assert summary[col][0] == pytest.approx(r["end_value"], rel=1e-12)
    assert pl.read_parquet(out / "book.parquet").equals(frame)
