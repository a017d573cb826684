# The quiet-stretch fast path of the block loop (ext/_core.pyx replay_one), inline and nogil.
#
# Between the blocks where the full block body can do something (the first and the last block, records, metric
# samples, rebalance checks, queue releases: found by quiet_end from precomputed indices), a block can only move
# the health factor's running minimum (and its block) and the count of blocks below HF 1.05; anything else that
# can happen at a block inside the stretch (HF < 1: a liquidation; price / rate below the de-peg exit; a slash) is
# tested per block, and the stretch stops there so that the full body replays that block. HF = r x a[b] is the
# same product the full body computes, so the minimum, its block and the count are bit-identical.
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from _types cimport Params, Summary, Mkt, State

cdef enum:
    QUIET_UNROLL = 4            # blocks per group: one branch per group, four independent minimum lanes

cdef extern from *:
    """
    #define BT_NEVER INT64_MAX
    """
    const int64_t NEVER "BT_NEVER"      # a due time no block reaches


cdef inline Py_ssize_t quiet_end(const Mkt* m, Py_ssize_t b, Py_ssize_t hi, Py_ssize_t rp,
                                 Py_ssize_t nm) noexcept nogil:
    # the first block in [b, hi] at which the full body must run for a reason known by index (hi: none): the
    # first and the last block, the next metric sample (nm) and the next record (rec_idx[rp])
    cdef Py_ssize_t e = hi, k
    if b == 0:
        return 0
    if m.n - 1 < e:
        e = m.n - 1
    if nm < e:
        e = nm
    if rp < m.n_rec:
        k = m.rec_idx[rp]
        if b <= k < e:
            e = k
    return e


cdef inline int64_t due_time(const State* st, const Params* p) noexcept nogil:
    # the time from which the full body must run again for a reason known by time (NEVER: none): the queued
    # withdrawal's release and the next rebalance check, the conditions of action_due in ext/_core.pyx
    cdef int64_t t = NEVER
    if st.queued > 0 and st.release_ts < t:
        t = st.release_ts
    if p.reb_on and not st.closed and st.next_check < t:
        t = st.next_check
    return t


cdef inline Py_ssize_t quiet_kernel(const double* a, double r, const int64_t* ts, int64_t due,
                                    const double* price, const double* xrate, const double* up, double depeg_below,
                                    const double* slash, Summary* sm, Py_ssize_t b, Py_ssize_t e, bint debt,
                                    bint timed, bint depeg, bint slashes) noexcept nogil:
    # Blocks b..e-1 with constant balances: returns the first block that needs the full body (HF < 1, its time
    # at or after `due`, a de-peg below the exit, a slash), or e. Called with constant debt / timed / depeg /
    # slashes so that the compiler keeps one specialised loop per case. A group of four with an HF below 1.05
    # (or a due time, de-peg or slash) is gone through block by block, where the count below 1.05 is kept, so
    # the unrolled loop is only loads, products, compares and the minimum lanes. Four minimum lanes (strict <,
    # so each keeps its first block) merge to the lowest value, ties to the earliest block: the full body's
    # sequential strict-< minimum. ts is non-decreasing, so the group's last time stands for the group.
    cdef double h0, h1, h2, h3, v0 = INFINITY, v1 = INFINITY, v2 = INFINITY, v3 = INFINITY
    cdef Py_ssize_t i0 = -1, i1 = -1, i2 = -1, i3 = -1, j = b, g
    cdef int64_t cnt = 0
    cdef bint stop
    if not (debt or timed or depeg or slashes):
        return e                # nothing can happen at any block of the stretch
    while j < e:
        while j + QUIET_UNROLL <= e:
            stop = False
            if debt:
                h0 = r * a[j]
                h1 = r * a[j + 1]
                h2 = r * a[j + 2]
                h3 = r * a[j + 3]
                stop = (h0 < 1.05) | (h1 < 1.05) | (h2 < 1.05) | (h3 < 1.05)
            if timed:
                stop = stop | (ts[j + 3] >= due)
            if depeg:
                # the same expression as depeg_ratio (ext/_position.pxd): price over the rate's debt-asset value
                stop = stop | (price[j] / (xrate[j] * up[j]) < depeg_below) \
                    | (price[j + 1] / (xrate[j + 1] * up[j + 1]) < depeg_below) \
                    | (price[j + 2] / (xrate[j + 2] * up[j + 2]) < depeg_below) \
                    | (price[j + 3] / (xrate[j + 3] * up[j + 3]) < depeg_below)
            if slashes:
                stop = stop | (slash[j] > 0) | (slash[j + 1] > 0) | (slash[j + 2] > 0) | (slash[j + 3] > 0)
            if stop:
                break
            if debt:
                if h0 < v0:
                    v0 = h0
                    i0 = j
                if h1 < v1:
                    v1 = h1
                    i1 = j + 1
                if h2 < v2:
                    v2 = h2
                    i2 = j + 2
                if h3 < v3:
                    v3 = h3
                    i3 = j + 3
            j += QUIET_UNROLL
        # block by block through the group that stopped (or the tail shorter than a group): HF below 1.05 is
        # counted here, and the first block that needs the full body ends the stretch
        g = j + QUIET_UNROLL if j + QUIET_UNROLL < e else e
        while j < g:
            if timed and ts[j] >= due:
                break
            if depeg and price[j] / (xrate[j] * up[j]) < depeg_below:
                break
            if slashes and slash[j] > 0:
                break
            if debt:
                h0 = r * a[j]
                if h0 < 1.0:
                    break
                if h0 < v0:
                    v0 = h0
                    i0 = j
                cnt += <int64_t>(h0 < 1.05)
            j += 1
        if j < g:
            break
    if debt:
        if v1 < v0 or (v1 == v0 and i1 < i0):
            v0 = v1
            i0 = i1
        if v2 < v0 or (v2 == v0 and i2 < i0):
            v0 = v2
            i0 = i2
        if v3 < v0 or (v3 == v0 and i3 < i0):
            v0 = v3
            i0 = i3
        if v0 < sm.min_hf:
            sm.min_hf = v0
            sm.min_hf_idx = i0
        sm.blocks_below_105 += cnt
    return j


cdef inline Py_ssize_t quiet_run(const State* st, double r, const Params* p, const Mkt* m, Summary* sm,
                                 Py_ssize_t b, Py_ssize_t e, bint depeg, bint slashes) noexcept nogil:
    # the calm cases (a debt, no de-peg or slash to watch; with or without a due time) get their own loops
    cdef int64_t due = due_time(st, p)
    if st.d > 0 and not depeg and not slashes:
        if due == NEVER:
            return quiet_kernel(m.a, r, m.ts, due, m.price, m.xrate, m.up, p.depeg_below, m.slash, sm, b, e,
                                True, False, False, False)
        return quiet_kernel(m.a, r, m.ts, due, m.price, m.xrate, m.up, p.depeg_below, m.slash, sm, b, e,
                            True, True, False, False)
    return quiet_kernel(m.a, r, m.ts, due, m.price, m.xrate, m.up, p.depeg_below, m.slash, sm, b, e,
                        st.d > 0, due != NEVER, depeg, slashes)
