/*
 * Match kernels for ridgeline.index: multi-index hashing (MIH) over 256-bit PDQ
 * hashes, a blocked Hamming scan, a Euclidean scan for PhotoDNA vectors and a fast
 * 64-bit checksum for index files.
 *
 * Every entry point releases the GIL and may split its work over POSIX threads, so
 * several Python threads (or one call with nthreads > 1) use every core.
 *
 * Bit numbering (shared with the Python side and the documented file format): a
 * 32-byte hash is read as four little-endian uint64 words w[0..3]; bit i is
 * (w[i / 64] >> (i % 64)) & 1. A MIH substring j covers bits [start_j, start_j+len_j).
 *
 * Results are triplets (query index, row, distance) in three parallel arrays,
 * unsorted across queries; within a query rows are unique.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PF 12 /* prefetch distance for random access pipelines */

/* ------------------------------------------------------------------ results */

typedef struct {
    uint32_t *q;
    uint32_t *row;
    uint32_t *dist;
    size_t n, cap;
    int oom;
} results_t;

static int res_reserve(results_t *r, size_t extra) {
    if (r->n + extra <= r->cap) return 0;
    size_t cap = r->cap ? r->cap : 256;
    while (cap < r->n + extra) cap *= 2;
    uint32_t *q = realloc(r->q, cap * sizeof(uint32_t));
    if (!q) { r->oom = 1; return -1; }
    r->q = q;
    uint32_t *row = realloc(r->row, cap * sizeof(uint32_t));
    if (!row) { r->oom = 1; return -1; }
    r->row = row;
    uint32_t *dist = realloc(r->dist, cap * sizeof(uint32_t));
    if (!dist) { r->oom = 1; return -1; }
    r->dist = dist;
    r->cap = cap;
    return 0;
}

static inline void res_push(results_t *r, uint32_t q, uint32_t row, uint32_t d) {
    if (r->n == r->cap && res_reserve(r, 1) < 0) return;
    r->q[r->n] = q;
    r->row[r->n] = row;
    r->dist[r->n] = d;
    r->n++;
}

static void res_free(results_t *r) {
    free(r->q);
    free(r->row);
    free(r->dist);
    memset(r, 0, sizeof(*r));
}

/* Concatenate per-thread results into a Python tuple of three bytes objects. */
static PyObject *results_to_python(results_t *parts, int nparts) {
    size_t total = 0;
    for (int t = 0; t < nparts; t++) {
        if (parts[t].oom) return PyErr_NoMemory();
        total += parts[t].n;
    }
    PyObject *bq = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(total * 4));
    PyObject *br = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(total * 4));
    PyObject *bd = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(total * 4));
    if (!bq || !br || !bd) {
        Py_XDECREF(bq);
        Py_XDECREF(br);
        Py_XDECREF(bd);
        return NULL;
    }
    char *pq = PyBytes_AS_STRING(bq), *pr = PyBytes_AS_STRING(br), *pd = PyBytes_AS_STRING(bd);
    for (int t = 0; t < nparts; t++) {
        size_t k = parts[t].n * 4;
        if (k) {
            memcpy(pq, parts[t].q, k);
            memcpy(pr, parts[t].row, k);
            memcpy(pd, parts[t].dist, k);
        }
        pq += k;
        pr += k;
        pd += k;
    }
    return Py_BuildValue("(NNN)", bq, br, bd);
}

/*
 * Run `worker` on `nthreads` argument structs laid out `size` bytes apart, the first in
 * this thread, with the GIL released; then merge their results. Every kernel's
 * per-thread arguments begin with their results_t, which is freed here. A thread that
 * cannot be started runs its share here instead.
 */
static PyObject *run_parts(void *targs, size_t size, int nthreads, void *(*worker)(void *)) {
    char *base = (char *)targs;
    pthread_t th[64];
    int started[64] = {0};
    Py_BEGIN_ALLOW_THREADS;
    for (int t = 1; t < nthreads; t++)
        started[t] = pthread_create(&th[t], NULL, worker, base + (size_t)t * size) == 0;
    worker(base);
    for (int t = 1; t < nthreads; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else worker(base + (size_t)t * size);
    }
    Py_END_ALLOW_THREADS;
    results_t parts[64];
    for (int t = 0; t < nthreads; t++) parts[t] = *(results_t *)(base + (size_t)t * size);
    PyObject *ret = results_to_python(parts, nthreads);
    for (int t = 0; t < nthreads; t++) res_free((results_t *)(base + (size_t)t * size));
    return ret;
}

/* ------------------------------------------------------------------ helpers */

static inline void load4(const uint8_t *p, uint64_t w[4]) { memcpy(w, p, 32); }

static inline uint32_t dist256(const uint64_t a[4], const uint8_t *p) {
    uint64_t b[4];
    memcpy(b, p, 32);
    return (uint32_t)(__builtin_popcountll(a[0] ^ b[0]) + __builtin_popcountll(a[1] ^ b[1]) +
                      __builtin_popcountll(a[2] ^ b[2]) + __builtin_popcountll(a[3] ^ b[3]));
}

static inline uint32_t get_sub(const uint64_t w[4], int start, int len) {
    int wi = start >> 6, sh = start & 63;
    uint64_t v = w[wi] >> sh;
    if (sh + len > 64) v |= w[wi + 1] << (64 - sh);
    return (uint32_t)(v & ((len >= 64) ? ~0ULL : ((1ULL << len) - 1)));
}

typedef struct {
    int m;
    int start[64];
    int len[64];
    uint64_t off_base[64];
} layout_t;

static int parse_layout(Py_buffer *buf, layout_t *lay) {
    if (buf->len % (3 * 8) != 0) {
        PyErr_SetString(PyExc_ValueError, "layout must be int64 triples (start, len, offset)");
        return -1;
    }
    const int64_t *v = (const int64_t *)buf->buf;
    int m = (int)(buf->len / 24);
    if (m < 1 || m > 64) {
        PyErr_SetString(PyExc_ValueError, "layout needs 1 to 64 substrings");
        return -1;
    }
    lay->m = m;
    for (int j = 0; j < m; j++) {
        int s = (int)v[3 * j], l = (int)v[3 * j + 1];
        if (s < 0 || l < 1 || l > 32 || s + l > 256) {
            PyErr_SetString(PyExc_ValueError, "substring out of range (1 to 32 bits inside 256)");
            return -1;
        }
        lay->start[j] = s;
        lay->len[j] = l;
        lay->off_base[j] = (uint64_t)v[3 * j + 2];
    }
    return 0;
}

static int nthreads_ok(int *nthreads) {
    if (*nthreads < 1) *nthreads = 1;
    if (*nthreads > 64) *nthreads = 64;
    return 0;
}

/* ------------------------------------------------------------------ MIH build */

typedef struct {
    const uint8_t *hashes;
    size_t n;
    const layout_t *lay;
    uint32_t *offsets;
    uint32_t *ids;
    int tid, nthreads;
    int failed;
} build_arg_t;

/*
 * One table: key every row, sort (key, row) by key with a stable LSD radix sort in
 * passes of at most 8 bits (few enough output streams that the scatter stays in cache
 * and TLB, so it streams through memory instead of one random access per row), then
 * fill the bucket offsets sequentially from the sorted keys.
 */
static int build_table(const uint8_t *hashes, size_t n, int s, int l, uint32_t *off,
                       uint32_t *ids, uint32_t *ka, uint32_t *kb, uint32_t *ib) {
    uint64_t w[4];
    for (size_t i = 0; i < n; i++) {
        load4(hashes + i * 32, w);
        ka[i] = get_sub(w, s, l);
    }
    int npass = (l + 7) / 8, bits = (l + npass - 1) / npass;
    size_t hist[256];
    uint32_t *sk = ka, *dk = kb, *si = NULL;
    for (int p = 0; p < npass; p++) {
        int shift = p * bits, width = l - shift < bits ? l - shift : bits;
        uint32_t mask = (1u << width) - 1;
        memset(hist, 0, sizeof(hist));
        for (size_t i = 0; i < n; i++) hist[(sk[i] >> shift) & mask]++;
        size_t acc = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = hist[b];
            hist[b] = acc;
            acc += c;
        }
        /* ping-pong between ib and the output table so the last pass lands in ids */
        uint32_t *di = ((npass - 1 - p) % 2 == 0) ? ids : ib;
        for (size_t i = 0; i < n; i++) {
            uint32_t k = sk[i];
            size_t pos = hist[(k >> shift) & mask]++;
            dk[pos] = k;
            di[pos] = si ? si[i] : (uint32_t)i;
        }
        uint32_t *t = sk;
        sk = dk;
        dk = t;
        si = di;
    }
    size_t K = (size_t)1 << l, k = 0;
    for (size_t i = 0; i < n; i++)
        while (k <= sk[i]) off[k++] = (uint32_t)i;
    while (k <= K) off[k++] = (uint32_t)n;
    return 0;
}

static void *build_worker(void *p) {
    build_arg_t *a = (build_arg_t *)p;
    size_t n = a->n ? a->n : 1;
    uint32_t *ka = malloc(n * 4), *kb = malloc(n * 4), *ib = malloc(n * 4);
    if (!ka || !kb || !ib) {
        a->failed = 1;
    } else {
        for (int j = a->tid; j < a->lay->m; j += a->nthreads) {
            if (build_table(a->hashes, a->n, a->lay->start[j], a->lay->len[j],
                            a->offsets + a->lay->off_base[j], a->ids + (size_t)j * a->n, ka, kb,
                            ib) < 0) {
                a->failed = 1;
                break;
            }
        }
    }
    free(ka);
    free(kb);
    free(ib);
    return NULL;
}

static PyObject *mih_build(PyObject *self, PyObject *args) {
    Py_buffer hb, lb, ob, ib;
    int nthreads = 1;
    if (!PyArg_ParseTuple(args, "y*y*w*w*|i", &hb, &lb, &ob, &ib, &nthreads)) return NULL;
    PyObject *ret = NULL;
    layout_t lay;
    if (parse_layout(&lb, &lay) < 0) goto done;
    if (hb.len % 32) {
        PyErr_SetString(PyExc_ValueError, "hashes must be a multiple of 32 bytes");
        goto done;
    }
    size_t n = (size_t)hb.len / 32;
    if (n >= 0xFFFFFFFFull) {
        PyErr_SetString(PyExc_ValueError, "too many rows for one index (max 2^32 - 1)");
        goto done;
    }
    size_t need_off = 0;
    for (int j = 0; j < lay.m; j++) {
        size_t end = lay.off_base[j] + ((size_t)1 << lay.len[j]) + 1;
        if (end > need_off) need_off = end;
    }
    if ((size_t)ob.len < need_off * 4 || (size_t)ib.len < (size_t)lay.m * n * 4) {
        PyErr_SetString(PyExc_ValueError, "offsets or ids buffer too small for the layout");
        goto done;
    }
    nthreads_ok(&nthreads);
    if (nthreads > lay.m) nthreads = lay.m;
    build_arg_t targs[64];
    pthread_t th[64];
    Py_BEGIN_ALLOW_THREADS;
    for (int t = 0; t < nthreads; t++) {
        targs[t] = (build_arg_t){hb.buf, n, &lay, ob.buf, ib.buf, t, nthreads, 0};
        if (t > 0) pthread_create(&th[t], NULL, build_worker, &targs[t]);
    }
    build_worker(&targs[0]);
    for (int t = 1; t < nthreads; t++) pthread_join(th[t], NULL);
    Py_END_ALLOW_THREADS;
    for (int t = 0; t < nthreads; t++) {
        if (targs[t].failed) {
            PyErr_NoMemory();
            goto done;
        }
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&hb);
    PyBuffer_Release(&lb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&ib);
    return ret;
}

/* ------------------------------------------------------------------ MIH search */

typedef struct {
    uint64_t *keys; /* absolute positions in the offsets array */
    size_t nkeys, capkeys;
    uint64_t *rng; /* pairs (absolute ids start, count) */
    size_t nrng, caprng;
    uint32_t *cand;
    size_t ncand, capcand;
    uint64_t *tmp;
    size_t captmp;
    int oom;
} scratch_t;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void scratch_free(scratch_t *s) {
    free(s->keys);
    free(s->rng);
    free(s->cand);
    free(s->tmp);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

typedef struct {
    results_t res; /* first: run_parts collects it */
    const uint8_t *hashes;
    size_t n;
    const uint32_t *offsets;
    const uint32_t *ids;
    const layout_t *lay;
    const uint8_t *queries;
    size_t nq;
    int radius;
    int tid, nthreads;
} search_arg_t;

/* Enumerate every value within Hamming distance r of v in `len` bits (Gosper's hack). */
static int push_ball(scratch_t *s, uint64_t base, uint32_t v, int len, int r) {
    for (int d = 0; d <= r && d <= len; d++) {
        if (d == 0) {
            if (grow((void **)&s->keys, &s->capkeys, s->nkeys + 1, 8) < 0) return -1;
            s->keys[s->nkeys++] = base + v;
            continue;
        }
        uint64_t limit = 1ULL << len;
        for (uint64_t mask = (1ULL << d) - 1; mask < limit;) {
            if (grow((void **)&s->keys, &s->capkeys, s->nkeys + 1, 8) < 0) return -1;
            s->keys[s->nkeys++] = base + (v ^ (uint32_t)mask);
            uint64_t c = mask & -mask, rr = mask + c;
            mask = (((rr ^ mask) >> 2) / c) | rr;
        }
    }
    return 0;
}

static void search_one(search_arg_t *a, scratch_t *s, size_t qi) {
    const layout_t *lay = a->lay;
    uint64_t w[4];
    load4(a->queries + qi * 32, w);
    int m = lay->m, q = a->radius / m, extra = a->radius % m;
    s->nkeys = 0;
    /* table index of each key range: tables are pushed in order, remember boundaries */
    size_t bound[65];
    for (int j = 0; j < m; j++) {
        bound[j] = s->nkeys;
        int rj = j <= extra ? q : q - 1;
        if (rj < 0) continue;
        uint32_t v = get_sub(w, lay->start[j], lay->len[j]);
        if (push_ball(s, lay->off_base[j], v, lay->len[j], rj) < 0) { s->oom = 1; return; }
    }
    bound[m] = s->nkeys;
    /* stage 1: bucket ranges (offsets are random reads: prefetch ahead) */
    s->nrng = 0;
    if (grow((void **)&s->rng, &s->caprng, 2 * s->nkeys + 2, 8) < 0) { s->oom = 1; return; }
    size_t total = 0;
    for (int j = 0; j < m; j++) {
        uint64_t idbase = (uint64_t)j * a->n;
        for (size_t i = bound[j]; i < bound[j + 1]; i++) {
            if (i + PF < s->nkeys) __builtin_prefetch(a->offsets + s->keys[i + PF]);
            uint32_t st = a->offsets[s->keys[i]], en = a->offsets[s->keys[i] + 1];
            if (en > st) {
                s->rng[2 * s->nrng] = idbase + st;
                s->rng[2 * s->nrng + 1] = en - st;
                s->nrng++;
                total += en - st;
            }
        }
    }
    /* stage 2: gather candidate rows */
    if (grow((void **)&s->cand, &s->capcand, total + 1, 4) < 0) { s->oom = 1; return; }
    s->ncand = 0;
    for (size_t i = 0; i < s->nrng; i++) {
        if (i + PF < s->nrng) __builtin_prefetch(a->ids + s->rng[2 * (i + PF)]);
        const uint32_t *src = a->ids + s->rng[2 * i];
        uint64_t cnt = s->rng[2 * i + 1];
        for (uint64_t k = 0; k < cnt; k++) s->cand[s->ncand++] = src[k];
    }
    /* stage 3: verify (hash rows are random reads: prefetch ahead) */
    size_t before = a->res.n;
    for (size_t i = 0; i < s->ncand; i++) {
        if (i + PF < s->ncand) __builtin_prefetch(a->hashes + (size_t)s->cand[i + PF] * 32);
        uint32_t d = dist256(w, a->hashes + (size_t)s->cand[i] * 32);
        if (d <= (uint32_t)a->radius) res_push(&a->res, (uint32_t)qi, s->cand[i], d);
    }
    /* a row near the query can sit in several probed buckets: keep it once */
    size_t got = a->res.n - before;
    if (got > 1 && !a->res.oom) {
        if (grow((void **)&s->tmp, &s->captmp, got, 8) < 0) { s->oom = 1; return; }
        for (size_t i = 0; i < got; i++)
            s->tmp[i] = ((uint64_t)a->res.row[before + i] << 32) | a->res.dist[before + i];
        qsort(s->tmp, got, 8, cmp_u64);
        size_t k = 0;
        for (size_t i = 0; i < got; i++) {
            if (i > 0 && (s->tmp[i] >> 32) == (s->tmp[i - 1] >> 32)) continue;
            a->res.row[before + k] = (uint32_t)(s->tmp[i] >> 32);
            a->res.dist[before + k] = (uint32_t)(s->tmp[i] & 0xFFFFFFFFu);
            k++;
        }
        a->res.n = before + k;
    }
}

static void *search_worker(void *p) {
    search_arg_t *a = (search_arg_t *)p;
    scratch_t s;
    memset(&s, 0, sizeof(s));
    for (size_t qi = a->tid; qi < a->nq; qi += a->nthreads) {
        search_one(a, &s, qi);
        if (s.oom) {
            a->res.oom = 1;
            break;
        }
    }
    scratch_free(&s);
    return NULL;
}

static PyObject *mih_search(PyObject *self, PyObject *args) {
    Py_buffer hb, ob, ib, lb, qb;
    int radius, nthreads = 1;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*i|i", &hb, &ob, &ib, &lb, &qb, &radius, &nthreads))
        return NULL;
    PyObject *ret = NULL;
    layout_t lay;
    search_arg_t targs[64];
    if (parse_layout(&lb, &lay) < 0) goto done;
    if (hb.len % 32 || qb.len % 32) {
        PyErr_SetString(PyExc_ValueError, "hashes and queries must be multiples of 32 bytes");
        goto done;
    }
    if (radius < 0 || radius > 256) {
        PyErr_SetString(PyExc_ValueError, "radius must be between 0 and 256");
        goto done;
    }
    size_t n = (size_t)hb.len / 32, nq = (size_t)qb.len / 32;
    for (int j = 0; j < lay.m; j++) {
        if ((size_t)ob.len < (lay.off_base[j] + ((size_t)1 << lay.len[j]) + 1) * 4) {
            PyErr_SetString(PyExc_ValueError, "offsets buffer too small for the layout");
            goto done;
        }
    }
    if ((size_t)ib.len < (size_t)lay.m * n * 4) {
        PyErr_SetString(PyExc_ValueError, "ids buffer too small for the layout");
        goto done;
    }
    nthreads_ok(&nthreads);
    if ((size_t)nthreads > nq) nthreads = nq ? (int)nq : 1;
    for (int t = 0; t < nthreads; t++) {
        memset(&targs[t], 0, sizeof(targs[t]));
        targs[t].hashes = hb.buf;
        targs[t].n = n;
        targs[t].offsets = ob.buf;
        targs[t].ids = ib.buf;
        targs[t].lay = &lay;
        targs[t].queries = qb.buf;
        targs[t].nq = nq;
        targs[t].radius = radius;
        targs[t].tid = t;
        targs[t].nthreads = nthreads;
    }
    ret = run_parts(targs, sizeof(targs[0]), nthreads, search_worker);
done:
    PyBuffer_Release(&hb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&lb);
    PyBuffer_Release(&qb);
    return ret;
}

/* ------------------------------------------------------------------ Hamming scan */

typedef struct {
    results_t res; /* first: run_parts collects it */
    const uint8_t *hashes;
    size_t lo, hi;
    const uint8_t *queries;
    size_t nq;
    int radius;
} scan_arg_t;

#define SCAN_BLOCK 2048

static void *scan_worker(void *p) {
    scan_arg_t *a = (scan_arg_t *)p;
    for (size_t b0 = a->lo; b0 < a->hi; b0 += SCAN_BLOCK) {
        size_t b1 = b0 + SCAN_BLOCK < a->hi ? b0 + SCAN_BLOCK : a->hi;
        for (size_t qi = 0; qi < a->nq; qi++) {
            uint64_t w[4];
            load4(a->queries + qi * 32, w);
            for (size_t i = b0; i < b1; i++) {
                uint32_t d = dist256(w, a->hashes + i * 32);
                if (d <= (uint32_t)a->radius) res_push(&a->res, (uint32_t)qi, (uint32_t)i, d);
            }
        }
    }
    return NULL;
}

static PyObject *hamming_scan(PyObject *self, PyObject *args) {
    Py_buffer hb, qb;
    int radius, nthreads = 1;
    if (!PyArg_ParseTuple(args, "y*y*i|i", &hb, &qb, &radius, &nthreads)) return NULL;
    PyObject *ret = NULL;
    scan_arg_t targs[64];
    if (hb.len % 32 || qb.len % 32) {
        PyErr_SetString(PyExc_ValueError, "hashes and queries must be multiples of 32 bytes");
        goto done;
    }
    size_t n = (size_t)hb.len / 32, nq = (size_t)qb.len / 32;
    nthreads_ok(&nthreads);
    if (n < 4096) nthreads = 1;
    for (int t = 0; t < nthreads; t++) {
        memset(&targs[t], 0, sizeof(targs[t]));
        targs[t].hashes = hb.buf;
        targs[t].lo = n * t / nthreads;
        targs[t].hi = n * (t + 1) / nthreads;
        targs[t].queries = qb.buf;
        targs[t].nq = nq;
        targs[t].radius = radius;
    }
    ret = run_parts(targs, sizeof(targs[0]), nthreads, scan_worker);
done:
    PyBuffer_Release(&hb);
    PyBuffer_Release(&qb);
    return ret;
}

/* ------------------------------------------------------------------ Euclidean scan */

typedef struct {
    results_t res; /* first: run_parts collects it */
    const uint8_t *vecs;
    size_t lo, hi, dim;
    const uint8_t *queries;
    size_t nq;
    int64_t max_sq;
} l2_arg_t;

static void *l2_worker(void *p) {
    l2_arg_t *a = (l2_arg_t *)p;
    for (size_t b0 = a->lo; b0 < a->hi; b0 += 1024) {
        size_t b1 = b0 + 1024 < a->hi ? b0 + 1024 : a->hi;
        for (size_t qi = 0; qi < a->nq; qi++) {
            const uint8_t *qv = a->queries + qi * a->dim;
            for (size_t i = b0; i < b1; i++) {
                const uint8_t *v = a->vecs + i * a->dim;
                int64_t s = 0;
                for (size_t k = 0; k < a->dim; k++) {
                    int32_t d = (int32_t)v[k] - (int32_t)qv[k];
                    s += d * d;
                }
                if (s <= a->max_sq) res_push(&a->res, (uint32_t)qi, (uint32_t)i, (uint32_t)s);
            }
        }
    }
    return NULL;
}

static PyObject *l2_scan(PyObject *self, PyObject *args) {
    Py_buffer vb, qb;
    Py_ssize_t dim;
    long long max_sq;
    int nthreads = 1;
    if (!PyArg_ParseTuple(args, "y*y*nL|i", &vb, &qb, &dim, &max_sq, &nthreads)) return NULL;
    PyObject *ret = NULL;
    l2_arg_t targs[64];
    if (dim < 1 || vb.len % dim || qb.len % dim) {
        PyErr_SetString(PyExc_ValueError, "vectors and queries must be multiples of dim bytes");
        goto done;
    }
    size_t n = (size_t)(vb.len / dim), nq = (size_t)(qb.len / dim);
    nthreads_ok(&nthreads);
    if (n < 4096) nthreads = 1;
    for (int t = 0; t < nthreads; t++) {
        memset(&targs[t], 0, sizeof(targs[t]));
        targs[t].vecs = vb.buf;
        targs[t].lo = n * t / nthreads;
        targs[t].hi = n * (t + 1) / nthreads;
        targs[t].dim = (size_t)dim;
        targs[t].queries = qb.buf;
        targs[t].nq = nq;
        targs[t].max_sq = max_sq;
    }
    ret = run_parts(targs, sizeof(targs[0]), nthreads, l2_worker);
done:
    PyBuffer_Release(&vb);
    PyBuffer_Release(&qb);
    return ret;
}

/* ------------------------------------------------------------------ checksum */

/*
 * RLC64: four independent lanes over little-endian uint64 words (32 bytes a step),
 * each lane acc = rotl(acc + word * K2, 31) * K1; the tail (< 32 bytes) is folded in
 * word by word, then the last 0-7 bytes zero-padded; finally the lanes and the length
 * are mixed with an avalanche. Fast enough to check a gigabyte in well under a second.
 */
#define K1 0x9E3779B185EBCA87ULL
#define K2 0xC2B2AE3D27D4EB4FULL
#define K3 0x165667B19E3779F9ULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t lane(uint64_t acc, uint64_t w) { return rotl64(acc + w * K2, 31) * K1; }

static uint64_t rlc64(const uint8_t *p, size_t len, uint64_t seed) {
    uint64_t a0 = seed + K1 + K2, a1 = seed + K2, a2 = seed, a3 = seed - K1;
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        a0 = lane(a0, w[0]);
        a1 = lane(a1, w[1]);
        a2 = lane(a2, w[2]);
        a3 = lane(a3, w[3]);
    }
    uint64_t h = rotl64(a0, 1) + rotl64(a1, 7) + rotl64(a2, 12) + rotl64(a3, 18);
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = lane(h, w);
    }
    if (i < len) {
        uint64_t w = 0;
        memcpy(&w, p + i, len - i);
        h = lane(h, w ^ K3);
    }
    h ^= (uint64_t)len;
    h ^= h >> 33;
    h *= K2;
    h ^= h >> 29;
    h *= K3;
    h ^= h >> 32;
    return h;
}

static PyObject *checksum(PyObject *self, PyObject *args) {
    Py_buffer b;
    unsigned long long seed = 0;
    if (!PyArg_ParseTuple(args, "y*|K", &b, &seed)) return NULL;
    uint64_t h;
    Py_BEGIN_ALLOW_THREADS;
    h = rlc64((const uint8_t *)b.buf, (size_t)b.len, seed);
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLongLong(h);
}

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"mih_build", mih_build, METH_VARARGS,
     "mih_build(hashes, layout, offsets_out, ids_out, nthreads=1): counting-sort MIH tables."},
    {"mih_search", mih_search, METH_VARARGS,
     "mih_search(hashes, offsets, ids, layout, queries, radius, nthreads=1) -> (q, row, dist)."},
    {"hamming_scan", hamming_scan, METH_VARARGS,
     "hamming_scan(hashes, queries, radius, nthreads=1) -> (q, row, dist) as uint32 bytes."},
    {"l2_scan", l2_scan, METH_VARARGS,
     "l2_scan(vectors, queries, dim, max_sq, nthreads=1) -> (q, row, squared distance)."},
    {"checksum", checksum, METH_VARARGS, "checksum(buffer, seed=0) -> RLC64 of the bytes."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_kernels",
                                 "Compiled match kernels for ridgeline.index.", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&mod); }
