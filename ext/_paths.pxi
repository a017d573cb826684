# ------------------------------------------------------------------------------- paths as an axis
# run_batch_paths replays (configuration, path) pairs: path k scales the collateral's market price (and the
# oracle feed, and the hold price when the hold token is the collateral) by factor[k, sample_idx[b]] at block b.
# Each pair builds its own price, lane (oracle price, a, chunk bounds) and de-peg bounds in a scratch buffer of
# O(blocks) owned by the running thread and freed after it, so memory grows with the threads, not the paths;
# the pair then runs the same replay_one as run_batch (chunk skip included). With a factor of exactly 1.0
# every product x * 1.0 is x, so path results are bit-identical to run_batch's.
from libc.stdlib cimport malloc, free


cdef struct PathPtrs:
    const int64_t* sample_idx   # [block] -> sample
    const double* factor        # [path, sample], row-major
    Py_ssize_t ns               # samples per path
    const double* feed          # the oracle feed (unscaled)
    bint scale_hold             # the hold token is the collateral: its price follows the path
    const int* oracle           # per lane: oracle mode, CAPO growth and age
    const double* growth
    const int64_t* age
    Py_ssize_t npre             # CAPO: exchange-rate points before the window
    const int64_t* pre_ts
    const double* pre_xrate


cdef bint _run_pair(const Mkt* base, const PathPtrs* pp, const Params* p, Py_ssize_t path, Summary* sm,
                    Event* ev, Py_ssize_t ev_cap, double* rec, bint dense) noexcept nogil:
    cdef Py_ssize_t n = base.n, nch = base.nchunks, b, c, lo, hi
    cdef double g, q
    cdef double* buf = <double*>malloc((5 * n + 3 * nch) * sizeof(double))
    cdef int64_t* aarg = <int64_t*>malloc(nch * sizeof(int64_t))
    if buf == NULL or aarg == NULL:
        free(buf)
        free(aarg)
        return False
    cdef double* price = buf
    cdef double* hprice = buf + n
    cdef double* feed = buf + 2 * n
    cdef double* por = buf + 3 * n
    cdef double* a = buf + 4 * n
    cdef double* amin = buf + 5 * n
    cdef double* amax = amin + nch
    cdef double* qmin = amax + nch
    cdef const double* f = pp.factor + path * pp.ns
    for b in range(n):
        g = f[pp.sample_idx[b]]
        price[b] = base.price[b] * g
        feed[b] = pp.feed[b] * g
        hprice[b] = base.hprice[b] * g if pp.scale_hold else base.hprice[b]
    _build_lane(n, base.ts, base.xrate, base.up, price, feed, base.lt, base.sidx, base.bidx, pp.oracle[p.lane],
                pp.growth[p.lane], pp.age[p.lane], pp.npre, pp.pre_ts, pp.pre_xrate, por, a)
    _chunk_bounds(n, base.chunk, a, amin, amax, aarg)
    for c in range(nch):      # as chunk_qmin
        lo = c * base.chunk
        hi = lo + base.chunk if lo + base.chunk < n else n
        qmin[c] = INFINITY
        for b in range(lo, hi):
            q = price[b] / (base.xrate[b] * base.up[b])
            if q < qmin[c]:
                qmin[c] = q
    cdef Mkt m = base[0]
    cdef Out o
    m.price = price
    m.hprice = hprice
    m.por = por
    m.a = a
    m.amin = amin
    m.amax = amax
    m.aarg = aarg
    m.qmin = qmin
    o.sm = sm
    o.ev = ev
    o.ev_cap = ev_cap
    o.rec = rec
    _zero_summary(sm)
    replay_one(p, &m, &o, dense)
    free(buf)
    free(aarg)
    return True


def run_batch_paths(Params[::1] params, const int64_t[::1] pair_path, dict market, dict lanes,
                    const int64_t[::1] sample_idx, const double[:, ::1] factor, dict lane_modes,
                    const int64_t[::1] rec_idx, Py_ssize_t metric_every, Py_ssize_t chunk,
                    Summary[::1] summaries, Event[:, ::1] events, double[:, :, ::1] records,
                    bint scale_hold, bint dense=False, int threads=0):
    """Replay pairs (params[i], path pair_path[i]) over one market whose collateral price follows
    factor[path, sample_idx[b]] (see ext/_paths.pxi). market / lanes / outputs as run_batch (lanes needs the
    market-level arrays only: sidx, bidx, K, K2, KW, KR, schunk); lane_modes: "oracle" (int32), "capo_growth",
    "capo_age" (int64) per lane, "oracle_feed" per block, "pre_ts" / "pre_xrate" (CAPO points before the window)."""
    cdef Py_ssize_t npair = params.shape[0], n, nch, i, ncap = events.shape[1], nrec = rec_idx.shape[0]
    cdef Py_ssize_t npaths = factor.shape[0], ns = factor.shape[1]
    cdef const int64_t[::1] ts = market["ts"]
    cdef const double[::1] price = market["price"], xrate = market["xrate"], eth_usd = market["eth_usd"]
    cdef const double[::1] ltv = market["ltv"], lt = market["lt"], bonus = market["bonus"]
    cdef const double[::1] pfee = market["pfee"], gas = market["gas_gwei"]
    cdef const double[::1] rwd = market["reward"], slash = market["slash"]
    cdef const double[::1] hprice = market["hold_price"], hxrate = market["hold_xrate"]
    cdef const double[::1] up = market["underlying_price"], gtp = market["gas_token_price"]
    cdef const double[::1] KR = lanes["KR"], schunk = lanes["schunk"]
    cdef const double[::1] sidx = lanes["sidx"], bidx = lanes["bidx"], K = lanes["K"], K2 = lanes["K2"]
    cdef const double[::1] KW = lanes["KW"]
    cdef const int[::1] oracle = lane_modes["oracle"]
    cdef const double[::1] growth = lane_modes["capo_growth"], feed = lane_modes["oracle_feed"]
    cdef const int64_t[::1] age = lane_modes["capo_age"], pre_ts = lane_modes["pre_ts"]
    cdef const double[::1] pre_x = lane_modes["pre_xrate"]
    cdef Mkt base
    cdef PathPtrs pp
    cdef Py_ssize_t nlanes = oracle.shape[0]
    cdef int failed = 0
    n = ts.shape[0]
    nch = (n + chunk - 1) // chunk
    if n == 0 or chunk <= 0 or metric_every <= 0 or ncap <= 0 or npaths == 0 or ns == 0:
        raise ValueError("run_batch_paths needs blocks, paths, samples, chunk > 0, metric_every > 0 and "
                         "event capacity > 0")
    if (sidx.shape[0] != n or bidx.shape[0] != n or K.shape[0] != n or K2.shape[0] != n
            or rwd.shape[0] != n or slash.shape[0] != n or hprice.shape[0] != n or hxrate.shape[0] != n
            or KR.shape[0] != n or schunk.shape[0] != nch or up.shape[0] != n or gtp.shape[0] != n
            or KW.shape[0] != n or xrate.shape[0] != n or price.shape[0] != n or lt.shape[0] != n
            or feed.shape[0] != n or sample_idx.shape[0] != n or pre_x.shape[0] != pre_ts.shape[0]
            or growth.shape[0] != nlanes or age.shape[0] != nlanes):
        raise ValueError("lane / path arrays do not match the market")
    for i in range(n):
        if sample_idx[i] < 0 or sample_idx[i] >= ns or (i > 0 and sample_idx[i] < sample_idx[i - 1]):
            raise ValueError(f"paths: sample_idx[{i}] = {sample_idx[i]} is not a non-decreasing index below {ns}")
    if summaries.shape[0] != npair or events.shape[0] != npair or pair_path.shape[0] != npair:
        raise ValueError("output / pair arrays do not match the number of pairs")
    if nrec > 0 and (records.shape[0] != npair or records.shape[1] != nrec or records.shape[2] != N_RECORD):
        raise ValueError("record array has the wrong shape")
    for i in range(npair):
        if params[i].lane < 0 or params[i].lane >= nlanes or params[i].check_every <= 0:
            raise ValueError(f"pair {i}: bad lane or check_every")
        if age[params[i].lane] <= 0:
            raise ValueError(f"pair {i}: capo_age must be > 0")
        if pair_path[i] < 0 or pair_path[i] >= npaths:
            raise ValueError(f"pair {i}: path {pair_path[i]} outside 0..{npaths - 1}")
        if params[i].protocol < PROTO_AAVE_V3 or params[i].protocol > PROTO_GENERIC:
            raise ValueError(f"pair {i}: unknown protocol code {params[i].protocol}")
        if params[i].protocol == PROTO_GENERIC and isnan(params[i].cf_ovr):
            raise ValueError(f"pair {i}: the generic venue needs a close factor (cf_ovr)")
    base.n = n
    base.ts = &ts[0]
    base.price = &price[0]
    base.xrate = &xrate[0]
    base.up = &up[0]
    base.gtp = &gtp[0]
    base.eth_usd = &eth_usd[0]
    base.ltv = &ltv[0]
    base.lt = &lt[0]
    base.bonus = &bonus[0]
    base.pfee = &pfee[0]
    base.gas = &gas[0]
    base.rwd = &rwd[0]
    base.KR = &KR[0]
    base.slash = &slash[0]
    base.schunk = &schunk[0]
    base.hprice = &hprice[0]
    base.hxrate = &hxrate[0]
    base.chunk = chunk
    base.nchunks = nch
    base.rec_idx = &rec_idx[0] if nrec > 0 else NULL
    base.n_rec = nrec
    base.metric_every = metric_every
    base.sidx = &sidx[0]
    base.bidx = &bidx[0]
    base.K = &K[0]
    base.K2 = &K2[0]
    base.KW = &KW[0]
    pp.sample_idx = &sample_idx[0]
    pp.factor = &factor[0, 0]
    pp.ns = ns
    pp.feed = &feed[0]
    pp.scale_hold = scale_hold
    pp.oracle = &oracle[0]
    pp.growth = &growth[0]
    pp.age = &age[0]
    pp.npre = pre_ts.shape[0]
    pp.pre_ts = &pre_ts[0] if pp.npre > 0 else NULL
    pp.pre_xrate = &pre_x[0] if pp.npre > 0 else NULL
    with nogil, parallel(num_threads=threads if threads > 0 else 0):
        for i in prange(npair, schedule="dynamic", chunksize=1):
            if not _run_pair(&base, &pp, &params[i], pair_path[i], &summaries[i], &events[i, 0], ncap,
                             &records[i, 0, 0] if nrec > 0 else NULL, dense):
                failed += 1
    if failed:
        raise MemoryError("run_batch_paths: no memory for a path's scratch buffer")
