"""Ethereum mainnet addresses the RPC presets default to, each checked against public sources (cited below);
``--address`` overrides any of them."""
from __future__ import annotations

# Sources (public code read with the search tools): bgd-labs/aave-address-book src/AaveV3Ethereum.sol (Pool,
# AaveOracle, the *_UNDERLYING tokens, wstETH_ORACLE), src/ChainlinkEthereum.sol (ETH__USD); bgd-labs/aave-capo
# scripts/DeployEthereum.s.sol (ezETH_RESTAKE_MANAGER, rsETH_LRT_ORACLE, osETH_VAULT_CONTROLLER: the ratio
# providers Aave's CAPO adapters read); defisaver/defisaver-positions-sdk src/config/contracts.ts and
# karpatkey/defi-kit sdk/eth-sdk/config.ts (cWETHv3); defi-kit app/pages/learn/protocols/morpho_markets/
# ethereum.mdx (MorphoBlue); defisaver-positions-sdk src/markets/morphoBlue/index.ts
# (AdaptiveCurveIrm, the ezETH markets below).
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
WSTETH = "0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0"
WEETH = "0xCd5fE23C85820F7B72D0926FC9b05b43E359b7ee"
RENZO_RESTAKE_MANAGER = "0x74a09653A083691711cF8215a6ab074BB4e99ef5"
EZETH = "0xbf5495Efe5DB9ce00f80364C8B423567e58d2110"
KELP_LRT_ORACLE = "0x349A73444b1a310BAe67ef67973022020d70020d"
STAKEWISE_OSTOKEN_CONTROLLER = "0x2A261e60FB14586B474C208b1B7AC6D0f5000306"
CBETH = "0xBe9895146f7AF43049ca1c1AE358B0541Ea49704"
RETH = "0xae78736Cd615f374D3085123A210448E74Fc6393"
MORPHO_BLUE = "0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb"
MORPHO_ADAPTIVE_CURVE_IRM = "0x870aC11D48B15DB9a138Cf899d20F13F79Ba00BC"
COMET_WETH = "0xA17581A9E3356d9A858b789D68B4d866e593aE94"
AAVE_V3_POOL = "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
AAVE_V3_ORACLE = "0x54586bE62E3c3580375aE3723C145253060Ca0C2"
CHAINLINK_ETH_USD = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"
# Aave v3's wstETH source, a WstETHPriceCapAdapter (CAPO; address book tests/cache/verified.json): in the
# address book from 2025-06-28 to at least 2026-04-21 (so on 10 Mar 2026); before: 0xB4aB0c94...a010 (2025),
# 0x8B685115...Ac93 (from 2024-03). At another date read AaveOracle.getSourceOfAsset(wstETH).
AAVE_V3_WSTETH_CAPO = "0xe1D97bF61901B075E9626c8A2340a7De385861Ef"
# Uniswap v3 wstETH/WETH 0.01 % pool (token0 wstETH, token1 WETH): the pool integrators' code names so
# (WSTETH_WETH_V3_100, "#WSTETH WETH", fee 100; found with find_string) and a copy of Lido's wstETH liquidity
# page links; not in the repositories above
UNISWAP_V3_WSTETH_WETH = "0x109830a1AAaD605BbF02a9dFA7B0B92EC2FB7dAa"
# Morpho Blue ezETH/WETH markets of the April 2024 de-peg (loan WETH, collateral ezETH, AdaptiveCurveIrm, both
# on the oracle 0x61025e2B...): defisaver-positions-sdk src/markets/morphoBlue/index.ts (MORPHO_BLUE_EZETH_ETH,
# in it since 2024-05-22) and karpatkey/defi-kit sdk/src/protocols/morpho/markets/_ethInfo.ts; both ids
# recomputed here with morpho_market_id (tests/unit/test_rpc_presets.py)
MORPHO_EZETH_ORACLE = "0x61025e2B0122ac8bE4e37365A4003d87ad888Cc3"
MORPHO_EZETH_WETH_86 = "0x49bb2d114be9041a787432952927f6f144f05ad3e83196a7d062f374ee11d0ee"
MORPHO_EZETH_WETH_77 = "0x093d5b432aace8bf6c4d67494f4ac2542a499571ff7a1bcc9f8778f3200d457d"

#: symbol -> mainnet token address (for ``--asset SYMBOL``)
TOKENS = {"WETH": WETH, "wstETH": WSTETH, "weETH": WEETH, "ezETH": EZETH, "cbETH": CBETH, "rETH": RETH,
          "rsETH": "0xA1290d69c65A6Fe4DF752f95823fae25cB99e5A7", "osETH": "0xf1C9acDc66974dFB6dEcB12aA385b9cD01190E38"}
