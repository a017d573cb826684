# One liquidation entry point for every venue (step 4 of a block), inline and nogil.
from _types cimport (Params, Mkt, State, Out, PROTO_AAVE_V3, PROTO_AAVE_V2, PROTO_SPARK, PROTO_MORPHO, PROTO_COMET,
                     PROTO_GENERIC, PROTO_AAVE_V4)
from _aave cimport aave_liquidate
from _morpho cimport morpho_liquidate
from _comet cimport comet_absorb
from venues._aave_v4 cimport aave_v4_step


cdef inline void liquidate(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    if p.protocol == PROTO_MORPHO:
        morpho_liquidate(st, p, m, o, b)
    elif p.protocol == PROTO_COMET:
        comet_absorb(st, p, m, o, b)
    elif p.protocol == PROTO_AAVE_V4:
        aave_v4_step(st, p, m, o, b)
    else:
        aave_liquidate(st, p, m, o, b)      # Aave v3 / v2, Spark, generic


cdef inline dict venue_codes():
    # the PROTO_* codes by market.protocol, next to the dispatch they drive (_core.protocol_codes();
    # tests/unit/test_schema.py compares them with backtest/schema.py)
    return {"aave-v3": PROTO_AAVE_V3, "aave-v2": PROTO_AAVE_V2, "spark": PROTO_SPARK, "morpho-blue": PROTO_MORPHO,
            "compound-v3": PROTO_COMET, "generic": PROTO_GENERIC, "aave-v4": PROTO_AAVE_V4}
