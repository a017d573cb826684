cimport openmp

# ------------------------------------------------------------------------------- paths as an axis
# run_batch_paths replays (configuration, path) pairs: path k scales the collateral's market price (and the
# oracle feed, and the hold price when the hold token is the collateral) by factor[k, sample_idx[b]] at block b.
# Paths run one after the other (pairs grouped by path through `order`): a path's price, de-peg bounds and the
# lanes whose oracle reads the price (market, feed: oracle price, a, chunk bounds) are built once into buffers
# of O(lanes x blocks) reused by every path, so memory does not grow with the paths; then every configuration
# of the path runs in parallel through the same replay_one as run_batch (chunk skip included). An exchange-rate
# or CAPO lane's oracle does not read the market price, so its pairs read the plain lane. With a factor of exactly 1.0 every product x * 1.0 is x, so path
# results are bit-identical to run_batch's. With many paths (at least twice the threads: Monte Carlo) the paths
# run in parallel instead, each thread building its path into its own buffers and running the path's
# configurations in turn (one parallel region per batch: a path's configurations are too quick to share out);
# memory grows with the threads, not the paths, and each pair's result is the same in both modes.


cdef struct PathPtrs:
    const int64_t* sample_idx   # [block] -> sample
    const double* factor        # [path, sample], row-major
    Py_ssize_t ns               # samples per path
    const double* feed          # the oracle feed (unscaled)
    bint scale_hold             # the hold token is the collateral: its price follows the path
    bint any_feed               # a lane's oracle reads the feed: the path's feed is built
    const int* oracle           # per lane: oracle mode, CAPO growth and age
    const double* growth
    const int64_t* age
    Py_ssize_t npre             # CAPO: exchange-rate points before the window
    const int64_t* pre_ts
    const double* pre_xrate
    LanePtrs lp                 # the plain lanes, reused where the oracle does not read the price


cdef void _build_path(const Mkt* base, const PathPtrs* pp, Py_ssize_t path, Py_ssize_t nlanes, double* price,
                      double* hprice, double* qmin, double* feed, const LanePtrs* own) noexcept nogil:
    # path k's price, hold price, de-peg bounds and, for every lane whose oracle reads the price (market or
    # feed), its oracle price, a and chunk bounds; the same arithmetic as build_lane / chunk_qmin
    cdef Py_ssize_t n = base.n, nch = base.nchunks, b, c, lo, hi, ln
    cdef double g, q
    cdef int oracle
    cdef const double* f = pp.factor + path * pp.ns
    for b in range(n):
        # only what a replay of this path reads: the hold price when it follows the collateral (else the
        # plain one is read in place), the feed when a lane reads it (a path build is memory traffic)
        g = f[pp.sample_idx[b]]
        price[b] = base.price[b] * g
        if pp.scale_hold:
            hprice[b] = base.hprice[b] * g
        if pp.any_feed:
            feed[b] = pp.feed[b] * g
    for c in range(nch):
        lo = c * base.chunk
        hi = lo + base.chunk if lo + base.chunk < n else n
        qmin[c] = INFINITY
        for b in range(lo, hi):
            q = price[b] / (base.xrate[b] * base.up[b])
            if q < qmin[c]:
                qmin[c] = q
    for ln in range(nlanes):
        oracle = pp.oracle[ln]
        if oracle == ORACLE_MARKET or oracle == ORACLE_FEED:
            _build_lane(n, base.ts, base.xrate, base.up, price, feed, base.lt, base.sidx, base.bidx, oracle,
                        pp.growth[ln], pp.age[ln], pp.npre, pp.pre_ts, pp.pre_xrate,
                        <double*>own.por + ln * n, <double*>own.a + ln * n)
            _chunk_bounds(n, base.chunk, own.a + ln * n, <double*>own.amin + ln * nch,
                          <double*>own.amax + ln * nch, <int64_t*>own.aarg + ln * nch)


cdef void _run_pair(const Mkt* path_mkt, const PathPtrs* pp, const LanePtrs* own, const Params* p,
                    Summary* sm, Event* ev, Py_ssize_t ev_cap, double* rec, bint dense) noexcept nogil:
    # one pair: the path's market view, with its own lane where the oracle reads the price, else the plain lane
    cdef int oracle = pp.oracle[p.lane]
    cdef const LanePtrs* lp = own if oracle == ORACLE_MARKET or oracle == ORACLE_FEED else &pp.lp
    cdef Mkt m = path_mkt[0]
    cdef Out o
    m.por = lp.por + p.lane * lp.n
    m.a = lp.a + p.lane * lp.n
    m.amin = lp.amin + p.lane * lp.nch
    m.amax = lp.amax + p.lane * lp.nch
    m.aarg = lp.aarg + p.lane * lp.nch
    o.sm = sm
    o.ev = ev
    o.ev_cap = ev_cap
    o.rec = rec
    _zero_summary(sm)
    replay_one(p, &m, &o, dense)


cdef void _run_group(const Mkt* base, const PathPtrs* pp, Py_ssize_t k, Py_ssize_t nlanes, double* bufs,
                     double* qbuf, double* por, double* a, double* amin, double* amax, int64_t* aarg,
                     const int64_t* order, Py_ssize_t g0, Py_ssize_t g1, Params* params, Summary* summaries,
                     Event* events, Py_ssize_t ncap, double* records, Py_ssize_t nrec, bint dense) noexcept nogil:
    # one path on one thread: its buffers (this thread's), then every configuration of the path in turn
    cdef Py_ssize_t n = base.n, j, i
    cdef LanePtrs own
    cdef Mkt pm = base[0]
    own.n = n
    own.nch = base.nchunks
    own.por = por
    own.a = a
    own.amin = amin
    own.amax = amax
    own.aarg = aarg
    _build_path(base, pp, k, nlanes, bufs, bufs + n, qbuf, bufs + 2 * n, &own)
    pm.price = bufs
    pm.hprice = bufs + n if pp.scale_hold else base.hprice
    pm.qmin = qbuf
    for j in range(g0, g1):
        i = order[j]
        _run_pair(&pm, pp, &own, &params[i], &summaries[i], events + i * ncap, ncap,
                  records + i * nrec * N_RECORD if nrec > 0 else NULL, dense)


cdef void _run_groups_parallel(const Mkt* base, const PathPtrs* pp, Py_ssize_t nlanes, double[:, :, ::1] tb,
                               double[:, ::1] tq, double[:, :, ::1] tpor, double[:, :, ::1] ta,
                               double[:, :, ::1] tmin, double[:, :, ::1] tmax, int64_t[:, :, ::1] targ,
                               const int64_t[::1] order, const int64_t[::1] gstart, Py_ssize_t ngroups,
                               Params* params, Summary* summaries, Event* events, Py_ssize_t ncap, double* records,
                               Py_ssize_t nrec, const int64_t[::1] pair_path, bint dense, int nthreads):
    cdef Py_ssize_t gi, tid, g0, g1
    with nogil, parallel(num_threads=nthreads):
        for gi in prange(ngroups, schedule="dynamic", chunksize=1):
            tid = openmp.omp_get_thread_num()
            g0 = gstart[gi]
            g1 = gstart[gi + 1]
            _run_group(base, pp, pair_path[order[g0]], nlanes, &tb[tid, 0, 0], &tq[tid, 0], &tpor[tid, 0, 0],
                       &ta[tid, 0, 0], &tmin[tid, 0, 0], &tmax[tid, 0, 0], &targ[tid, 0, 0], &order[0], g0, g1,
                       params, summaries, events, ncap, records, nrec, dense)


def run_batch_paths(Params[::1] params, const int64_t[::1] pair_path, dict market, dict lanes,
                    const int64_t[::1] sample_idx, const double[:, ::1] factor, dict lane_modes,
                    const int64_t[::1] rec_idx, Py_ssize_t metric_every, Py_ssize_t chunk,
                    Summary[::1] summaries, Event[:, ::1] events, double[:, :, ::1] records,
                    bint scale_hold, bint dense=False, int threads=0):
    """Replay pairs (params[i], path pair_path[i]) over one market whose collateral price follows
    factor[path, sample_idx[b]] (see ext/_paths.pxi). market / lanes / outputs as run_batch (the plain lanes'
    por / a / bounds serve exchange-rate and CAPO lanes, whose oracle does not read the price); lane_modes: "oracle" (int32), "capo_growth",
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
    cdef const double[:, ::1] por = lanes["por"], a = lanes["a"]
    cdef const double[:, ::1] amin = lanes["amin"], amax = lanes["amax"]
    cdef const int64_t[:, ::1] aarg = lanes["aarg"]
    cdef Mkt base
    cdef PathPtrs pp
    cdef Py_ssize_t nlanes = oracle.shape[0]
    cdef Py_ssize_t j, k, g0, g1
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
            or growth.shape[0] != nlanes or age.shape[0] != nlanes or por.shape[0] != nlanes
            or por.shape[1] != n or a.shape[0] != nlanes or a.shape[1] != n or amin.shape[0] != nlanes
            or amin.shape[1] != nch or amax.shape[1] != nch or aarg.shape[1] != nch):
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
        if params[i].protocol < 0 or params[i].protocol >= N_PROTOCOLS:
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
    pp.lp.n = n
    pp.lp.nch = nch
    pp.lp.por = &por[0, 0]
    pp.lp.a = &a[0, 0]
    pp.lp.amin = &amin[0, 0]
    pp.lp.amax = &amax[0, 0]
    pp.lp.aarg = &aarg[0, 0]
    pp.sample_idx = &sample_idx[0]
    pp.factor = &factor[0, 0]
    pp.ns = ns
    pp.feed = &feed[0]
    pp.scale_hold = scale_hold
    pp.any_feed = False
    for i in range(nlanes):
        if oracle[i] == ORACLE_FEED:
            pp.any_feed = True
    pp.oracle = &oracle[0]
    pp.growth = &growth[0]
    pp.age = &age[0]
    pp.npre = pre_ts.shape[0]
    pp.pre_ts = &pre_ts[0] if pp.npre > 0 else NULL
    pp.pre_xrate = &pre_x[0] if pp.npre > 0 else NULL
    # pairs grouped by path (stable: each group keeps the rows' order)
    order_arr = np.argsort(np.asarray(pair_path), kind="stable").astype(np.int64)
    cdef const int64_t[::1] order = order_arr
    sorted_path = np.asarray(pair_path)[order_arr]
    starts_arr = np.flatnonzero(np.r_[True, sorted_path[1:] != sorted_path[:-1]]).astype(np.int64)
    starts_arr = np.r_[starts_arr, npair].astype(np.int64)
    cdef const int64_t[::1] gstart = starts_arr
    cdef Py_ssize_t ngroups = starts_arr.shape[0] - 1
    cdef int nthreads = threads if threads > 0 else openmp.omp_get_max_threads()
    if nthreads > 1 and ngroups >= 2 * nthreads:
        # many paths: paths in parallel, each thread with its own path buffers (memory grows with the
        # threads, not the paths), one parallel region for the batch; a pair's result does not depend on
        # which thread or mode ran it
        tb = np.empty((nthreads, 3, n))
        tq = np.empty((nthreads, nch))
        tpor, ta = np.empty((nthreads, nlanes, n)), np.empty((nthreads, nlanes, n))
        tmin, tmax = np.empty((nthreads, nlanes, nch)), np.empty((nthreads, nlanes, nch))
        targ = np.empty((nthreads, nlanes, nch), dtype=np.int64)
        _run_groups_parallel(&base, &pp, nlanes, tb, tq, tpor, ta, tmin, tmax, targ, order, gstart, ngroups,
                             &params[0], &summaries[0], &events[0, 0], ncap,
                             &records[0, 0, 0] if nrec > 0 else NULL, nrec, pair_path, dense, nthreads)
        return
    # few paths: one path's buffers, reused; the configurations of a path in parallel
    own_por, own_a = np.empty((nlanes, n)), np.empty((nlanes, n))
    own_amin, own_amax = np.empty((nlanes, nch)), np.empty((nlanes, nch))
    own_aarg = np.empty((nlanes, nch), dtype=np.int64)
    bufs = np.empty((3, n))
    qbuf = np.empty(nch)
    cdef double[:, ::1] own_por_v = own_por, own_a_v = own_a, own_amin_v = own_amin, own_amax_v = own_amax
    cdef int64_t[:, ::1] own_aarg_v = own_aarg
    cdef double[:, ::1] bufs_v = bufs
    cdef double[::1] qbuf_v = qbuf
    cdef LanePtrs own
    own.n = n
    own.nch = nch
    own.por = &own_por_v[0, 0]
    own.a = &own_a_v[0, 0]
    own.amin = &own_amin_v[0, 0]
    own.amax = &own_amax_v[0, 0]
    own.aarg = &own_aarg_v[0, 0]
    cdef Mkt pm = base
    pm.price = &bufs_v[0, 0]
    pm.hprice = &bufs_v[1, 0] if scale_hold else base.hprice
    pm.qmin = &qbuf_v[0]
    g0 = 0
    with nogil:
        while g0 < npair:
            k = pair_path[order[g0]]
            g1 = g0
            while g1 < npair and pair_path[order[g1]] == k:
                g1 += 1
            _build_path(&base, &pp, k, nlanes, &bufs_v[0, 0], &bufs_v[1, 0], &qbuf_v[0], &bufs_v[2, 0], &own)
            with parallel(num_threads=threads if threads > 0 else 0):
                for j in prange(g0, g1, schedule="dynamic", chunksize=1):
                    i = order[j]
                    _run_pair(&pm, &pp, &own, &params[i], &summaries[i], &events[i, 0], ncap,
                              &records[i, 0, 0] if nrec > 0 else NULL, dense)
            g0 = g1

