/*
 * PDQ image hashing kernel, written for Ridgeline.
 *
 * Exact mode must give the same bits as Meta's reference C++ PDQ (as called by the
 * `pdqhash` binding) on the same RGB pixels, so every floating-point operation below
 * follows the reference's arithmetic and operation order:
 *
 *   luma      double r*0.299 + g*0.587 + b*0.114, rounded once to float
 *   blur      two passes of (1-D box along rows, then 1-D box along columns), each box a
 *             float running sum (add the entering sample, then subtract the leaving one)
 *             divided by the current window length; window = ceil(dim / 128)
 *   decimate  sample (int)((i + 0.5) * dim / 64) of the blurred image, in double
 *   quality   sum over neighbour pairs of |(int)((u - v) * 100 / 255)|, / 90, max 100
 *   DCT       T = D A then B = T D^t with D the 16x64 DCT-II rows 1..16, float sums in k order
 *   bits      B[i][j] > Torben median of B; bit i*16+j; hex printed word 15 first
 *
 * What differs from the reference is only the memory order: the blur streams through
 * the image row by row (a small ring buffer instead of two full-size float images and
 * column-strided passes), runs 8 rows' running sums side by side so the CPU overlaps
 * their dependency chains, and computes only the 64 columns and rows that decimation
 * keeps in the last two passes. Each sample still sees the same operations in the same
 * order, so the results are bit-identical. Built without -ffast-math or FMA contraction.
 *
 * Fast mode (ridgeline/pdq/fast.py) predicts the 64x64 downsample from a small block-
 * averaged image with project64 and hashes it with hash_luma64; only that prediction is
 * approximate, the quality/DCT/median/bits code is the same.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PDQ_DIM 64
#define PDQ_OUT 16
#define MIN_HASHABLE_DIM 5
#define BATCH 8

/* ------------------------------------------------------------------------ */
/* Tables built once at import. */

static float dct_matrix[PDQ_OUT * PDQ_DIM];
static double luma_r[256], luma_g[256], luma_b[256];
static float luma_grey[256];

static void init_tables(void) {
    const double pi = 3.14159265358979323846;
    const float scale = (float)sqrt(2.0 / 64.0);
    for (int i = 0; i < PDQ_OUT; i++) {
        for (int j = 0; j < PDQ_DIM; j++) {
            double angle = (pi / 2.0 / 64.0) * (double)(i + 1) * (double)(2 * j + 1);
            dct_matrix[i * PDQ_DIM + j] = (float)((double)scale * cos(angle));
        }
    }
    for (int v = 0; v < 256; v++) {
        luma_r[v] = (double)v * 0.299;
        luma_g[v] = (double)v * 0.587;
        luma_b[v] = (double)v * 0.114;
        /* what a grey pixel becomes after Pillow's convert("RGB") (r = g = b) */
        luma_grey[v] = (float)((luma_r[v] + luma_g[v]) + luma_b[v]);
    }
}

/* ------------------------------------------------------------------------ */
/* 1-D box filter geometry, shared by the row and column passes. */

typedef struct {
    int n;      /* vector length */
    int window; /* full window */
    int p1, p2, p3, p4;
} box_plan;

static box_plan make_plan(int n, int window) {
    box_plan p;
    int half = (window + 2) / 2;
    p.n = n;
    p.window = window;
    p.p1 = half - 1;
    p.p2 = window - half + 1;
    p.p3 = n - window;
    p.p4 = half - 1;
    return p;
}

/* The divisor the reference uses for output position oi. */
static inline float plan_count(const box_plan *p, int oi) {
    if (oi < p->p2) return (float)(p->p1 + 1 + oi);
    if (oi < p->p2 + p->p3) return (float)p->window;
    return (float)(p->window - (oi - p->p2 - p->p3 + 1));
}

static int window_size(int dim) { return (dim + 2 * PDQ_DIM - 1) / (2 * PDQ_DIM); }

/*
 * Running sums along BATCH rows at once (independent chains the CPU can overlap).
 * out[r][oi] receives the raw running sum; the caller divides.
 */
static void box_rows_sums(const float *const in[BATCH], float *const out[BATCH],
                          const box_plan *p) {
    float s[BATCH] = {0};
    int ri = 0, li = 0, oi = 0;
    for (int t = 0; t < p->p1; t++, ri++)
        for (int r = 0; r < BATCH; r++) s[r] += in[r][ri];
    for (int t = 0; t < p->p2; t++, ri++, oi++)
        for (int r = 0; r < BATCH; r++) {
            s[r] += in[r][ri];
            out[r][oi] = s[r];
        }
    for (int t = 0; t < p->p3; t++, ri++, li++, oi++)
        for (int r = 0; r < BATCH; r++) {
            s[r] += in[r][ri];
            s[r] -= in[r][li];
            out[r][oi] = s[r];
        }
    for (int t = 0; t < p->p4; t++, li++, oi++)
        for (int r = 0; r < BATCH; r++) {
            s[r] -= in[r][li];
            out[r][oi] = s[r];
        }
}

/* Divide a row of running sums by the reference's window counts, in place. */
static void divide_row(float *row, const box_plan *p) {
    int oi = 0;
    for (; oi < p->p2; oi++) row[oi] = row[oi] / (float)(p->p1 + 1 + oi);
    const float w = (float)p->window;
    int end3 = p->p2 + p->p3;
    for (; oi < end3; oi++) row[oi] = row[oi] / w;
    for (; oi < p->n; oi++) row[oi] = row[oi] / (float)(p->window - (oi - end3 + 1));
}

/* Column box filter helpers: one running sum per column, fed whole rows in order, so
   each column sees exactly the reference's add/subtract sequence. */

static inline void vec_add(float *restrict s, const float *restrict x, int w) {
    for (int j = 0; j < w; j++) s[j] += x[j];
}
static inline void vec_add_sub(float *restrict s, const float *restrict a,
                               const float *restrict b, int w) {
    for (int j = 0; j < w; j++) {
        s[j] += a[j];
        s[j] -= b[j];
    }
}
static inline void vec_sub(float *restrict s, const float *restrict x, int w) {
    for (int j = 0; j < w; j++) s[j] -= x[j];
}
static inline void vec_div(float *restrict out, const float *restrict s, float c, int w) {
    for (int j = 0; j < w; j++) out[j] = s[j] / c;
}

/* ------------------------------------------------------------------------ */
/* Luma rows. */

static void luma_row_rgb(const uint8_t *px, int width, Py_ssize_t col_stride,
                         Py_ssize_t chan_stride, float *out) {
    if (col_stride == 3 && chan_stride == 1) { /* the common packed RGB case */
        for (int j = 0; j < width; j++, px += 3) {
            double y = luma_r[px[0]] + luma_g[px[1]];
            y = y + luma_b[px[2]];
            out[j] = (float)y;
        }
        return;
    }
    for (int j = 0; j < width; j++, px += col_stride) {
        double y = luma_r[px[0]] + luma_g[px[chan_stride]];
        y = y + luma_b[px[2 * chan_stride]];
        out[j] = (float)y;
    }
}

static void luma_row_grey(const uint8_t *px, int width, Py_ssize_t col_stride, float *out) {
    for (int j = 0; j < width; j++, px += col_stride) out[j] = luma_grey[*px];
}

/* ------------------------------------------------------------------------ */
/* Blur + decimate to 64x64, streaming. */

/* Pixels addressed by byte strides (any sign), so numpy views (rotations, flips,
   channel-reversed BGR) are hashed without copying. */
typedef struct {
    const uint8_t *pixels; /* first pixel (row 0, column 0, channel 0) */
    int height, width, channels;
    Py_ssize_t row_stride, col_stride, chan_stride;
} image_in;

static void image_luma_row(const image_in *im, int row, float *out) {
    const uint8_t *px = im->pixels + (Py_ssize_t)row * im->row_stride;
    if (im->channels == 1)
        luma_row_grey(px, im->width, im->col_stride, out);
    else
        luma_row_rgb(px, im->width, im->col_stride, im->chan_stride, out);
}

/*
 * Compute the 64x64 decimated, blurred luma. Returns 0 on success, -1 on out of memory.
 */
static int downsample64(const image_in *im, float out64[PDQ_DIM][PDQ_DIM], int shortcut) {
    const int h = im->height, w = im->width;
    if (shortcut && h == PDQ_DIM && w == PDQ_DIM) {
        /* the reference's single hash copies a 64x64 luma image as is, without blurring
           (its dihedral function has no such shortcut: shortcut = 0 there) */
        for (int i = 0; i < PDQ_DIM; i++) image_luma_row(im, i, out64[i]);
        return 0;
    }
    const int wr = window_size(w); /* along rows */
    const int wc = window_size(h); /* along columns */
    box_plan row_plan = make_plan(w, wr);
    box_plan col_plan = make_plan(h, wc);

    int col_idx[PDQ_DIM], row_idx[PDQ_DIM];
    for (int k = 0; k < PDQ_DIM; k++) {
        col_idx[k] = (int)(((k + 0.5) * w) / PDQ_DIM);
        row_idx[k] = (int)(((k + 0.5) * h) / PDQ_DIM);
    }

    /* Ring of first-pass rows: the column pass reads row ri and subtracts row ri - wc,
       while the first pass runs up to BATCH rows ahead. */
    const int ring_rows = wc + BATCH + 1;
    const size_t wpad = (size_t)w + 8;
    float *ring = malloc(sizeof(float) * wpad * (size_t)ring_rows);
    float *luma = malloc(sizeof(float) * wpad * BATCH);
    float *colsum = calloc(wpad, sizeof(float));
    float *pass2 = malloc(sizeof(float) * wpad * BATCH);  /* column-pass output rows */
    float *pass3 = malloc(sizeof(float) * wpad * BATCH);  /* second row-pass sums */
    float *scratch_in = calloc(wpad, sizeof(float));
    float *scratch_out = malloc(sizeof(float) * wpad);
    float *mid = malloc(sizeof(float) * (size_t)h * PDQ_DIM); /* h x 64 */
    if (!ring || !luma || !colsum || !pass2 || !pass3 || !scratch_in || !scratch_out || !mid) {
        free(ring); free(luma); free(colsum); free(pass2); free(pass3);
        free(scratch_in); free(scratch_out); free(mid);
        return -1;
    }

    int produced = 0;   /* first-pass rows written to the ring */
    int pending = 0;    /* column-pass rows waiting in pass2 for the second row pass */
    int pending_first = 0;
    int col_added = 0, col_sub = 0, col_out = 0, col_count = 0;
    const float *in_ptr[BATCH];
    float *out_ptr[BATCH];

#define RING(r) (ring + wpad * (size_t)((r) % ring_rows))

    /* Second row pass over the pending column-pass rows; keep only the 64 sampled columns. */
#define FLUSH_PASS3()                                                             \
    do {                                                                          \
        for (int r_ = 0; r_ < BATCH; r_++) {                                      \
            in_ptr[r_] = r_ < pending ? pass2 + wpad * r_ : scratch_in;           \
            out_ptr[r_] = r_ < pending ? pass3 + wpad * r_ : scratch_out;         \
        }                                                                         \
        box_rows_sums(in_ptr, out_ptr, &row_plan);                                \
        for (int r_ = 0; r_ < pending; r_++) {                                    \
            float *dst = mid + (size_t)(pending_first + r_) * PDQ_DIM;            \
            const float *src = pass3 + wpad * r_;                                 \
            for (int k_ = 0; k_ < PDQ_DIM; k_++)                                  \
                dst[k_] = src[col_idx[k_]] / plan_count(&row_plan, col_idx[k_]);  \
        }                                                                         \
        pending_first += pending;                                                 \
        pending = 0;                                                              \
    } while (0)

    /* Make sure first-pass row `need` exists in the ring. */
#define ENSURE_ROW(need)                                                          \
    while (produced <= (need)) {                                                  \
        int nb_ = h - produced < BATCH ? h - produced : BATCH;                    \
        for (int r_ = 0; r_ < BATCH; r_++) {                                      \
            if (r_ < nb_) {                                                       \
                image_luma_row(im, produced + r_, luma + wpad * r_);              \
                in_ptr[r_] = luma + wpad * r_;                                    \
                out_ptr[r_] = RING(produced + r_);                                \
            } else {                                                              \
                in_ptr[r_] = scratch_in;                                          \
                out_ptr[r_] = scratch_out;                                        \
            }                                                                     \
        }                                                                         \
        box_rows_sums(in_ptr, out_ptr, &row_plan);                                \
        for (int r_ = 0; r_ < nb_; r_++) divide_row(RING(produced + r_), &row_plan); \
        produced += nb_;                                                          \
    }

#define EMIT_COL_ROW()                                                            \
    do {                                                                          \
        vec_div(pass2 + wpad * pending, colsum, (float)col_count, w);             \
        pending++;                                                                \
        col_out++;                                                                \
        if (pending == BATCH) FLUSH_PASS3();                                      \
    } while (0)

    /* Column pass (phases as in the reference's 1-D box filter). */
    for (int t = 0; t < col_plan.p1; t++) {
        ENSURE_ROW(col_added);
        vec_add(colsum, RING(col_added), w);
        col_added++;
        col_count++;
    }
    for (int t = 0; t < col_plan.p2; t++) {
        ENSURE_ROW(col_added);
        vec_add(colsum, RING(col_added), w);
        col_added++;
        col_count++;
        EMIT_COL_ROW();
    }
    for (int t = 0; t < col_plan.p3; t++) {
        ENSURE_ROW(col_added);
        vec_add_sub(colsum, RING(col_added), RING(col_sub), w);
        col_added++;
        col_sub++;
        EMIT_COL_ROW();
    }
    for (int t = 0; t < col_plan.p4; t++) {
        vec_sub(colsum, RING(col_sub), w);
        col_sub++;
        col_count--;
        EMIT_COL_ROW();
    }
    if (pending) FLUSH_PASS3();
#undef EMIT_COL_ROW
#undef ENSURE_ROW
#undef FLUSH_PASS3
#undef RING

    /* Second column pass on the 64 kept columns, then keep the 64 sampled rows. */
    {
        float s[PDQ_DIM] = {0};
        int ri = 0, li = 0, oi = 0, cnt = 0, next = 0;
        box_plan *p = &col_plan;
#define TAKE()                                                              \
    do {                                                                    \
        while (next < PDQ_DIM && row_idx[next] == oi) {                     \
            vec_div(out64[next], s, (float)cnt, PDQ_DIM);                   \
            next++;                                                         \
        }                                                                   \
        oi++;                                                               \
    } while (0)
        for (int t = 0; t < p->p1; t++, ri++, cnt++) vec_add(s, mid + (size_t)ri * PDQ_DIM, PDQ_DIM);
        for (int t = 0; t < p->p2; t++, ri++) {
            vec_add(s, mid + (size_t)ri * PDQ_DIM, PDQ_DIM);
            cnt++;
            TAKE();
        }
        for (int t = 0; t < p->p3; t++, ri++, li++) {
            vec_add_sub(s, mid + (size_t)ri * PDQ_DIM, mid + (size_t)li * PDQ_DIM, PDQ_DIM);
            TAKE();
        }
        for (int t = 0; t < p->p4; t++, li++) {
            vec_sub(s, mid + (size_t)li * PDQ_DIM, PDQ_DIM);
            cnt--;
            TAKE();
        }
#undef TAKE
    }

    free(ring); free(luma); free(colsum); free(pass2); free(pass3);
    free(scratch_in); free(scratch_out); free(mid);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Quality, DCT, median, bits. */

static int quality_metric(float a[PDQ_DIM][PDQ_DIM]) {
    int gradient_sum = 0;
    for (int i = 0; i < PDQ_DIM - 1; i++)
        for (int j = 0; j < PDQ_DIM; j++) {
            float u = a[i][j], v = a[i + 1][j];
            int d = (int)(((u - v) * 100) / 255);
            gradient_sum += abs(d);
        }
    for (int i = 0; i < PDQ_DIM; i++)
        for (int j = 0; j < PDQ_DIM - 1; j++) {
            float u = a[i][j], v = a[i][j + 1];
            int d = (int)(((u - v) * 100) / 255);
            gradient_sum += abs(d);
        }
    int q = gradient_sum / 90;
    return q > 100 ? 100 : q;
}

static void dct64to16(float a[PDQ_DIM][PDQ_DIM], float b[PDQ_OUT][PDQ_OUT]) {
    float t[PDQ_OUT][PDQ_DIM];
    /* T = D A, summing over k in order; vectorised across j (independent sums). */
    for (int i = 0; i < PDQ_OUT; i++) {
        const float *d = dct_matrix + i * PDQ_DIM;
        float acc[PDQ_DIM] = {0};
        for (int k = 0; k < PDQ_DIM; k++) {
            const float dk = d[k];
            for (int j = 0; j < PDQ_DIM; j++) acc[j] += dk * a[k][j];
        }
        memcpy(t[i], acc, sizeof acc);
    }
    /* B = T D^t */
    for (int i = 0; i < PDQ_OUT; i++)
        for (int j = 0; j < PDQ_OUT; j++) {
            const float *d = dct_matrix + j * PDQ_DIM;
            float s = 0.0f;
            for (int k = 0; k < PDQ_DIM; k++) s += t[i][k] * d[k];
            b[i][j] = s;
        }
}

/* Torben Mogensen's median-by-bisection, same comparisons and result choice as the
   reference (which matters where values tie). */
static float torben_median(const float *m, int n) {
    float lo = m[0], hi = m[0];
    for (int i = 1; i < n; i++) {
        if (m[i] < lo) lo = m[i];
        if (m[i] > hi) hi = m[i];
    }
    int less, greater, equal;
    float guess, max_lt, min_gt;
    for (;;) {
        guess = (lo + hi) / 2;
        less = greater = equal = 0;
        max_lt = lo;
        min_gt = hi;
        for (int i = 0; i < n; i++) {
            if (m[i] < guess) {
                less++;
                if (m[i] > max_lt) max_lt = m[i];
            } else if (m[i] > guess) {
                greater++;
                if (m[i] < min_gt) min_gt = m[i];
            } else {
                equal++;
            }
        }
        if (less <= (n + 1) / 2 && greater <= (n + 1) / 2) break;
        if (less > greater)
            hi = max_lt;
        else
            lo = min_gt;
    }
    if (less >= (n + 1) / 2) return max_lt;
    if (less + equal >= (n + 1) / 2) return guess;
    return min_gt;
}

static void bits_to_hex(float b[PDQ_OUT][PDQ_OUT], char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    float median = torben_median(&b[0][0], PDQ_OUT * PDQ_OUT);
    for (int i = 0; i < PDQ_OUT; i++) {
        unsigned word = 0;
        for (int j = 0; j < PDQ_OUT; j++)
            if (b[i][j] > median) word |= 1u << j;
        /* word i is printed at position 15 - i, 4 hex digits, most significant first */
        char *dst = hex + (PDQ_OUT - 1 - i) * 4;
        dst[0] = digits[(word >> 12) & 15];
        dst[1] = digits[(word >> 8) & 15];
        dst[2] = digits[(word >> 4) & 15];
        dst[3] = digits[word & 15];
    }
    hex[64] = '\0';
}

/*
 * Dihedral variants from the DCT coefficients. A rotation or flip of the 64x64 image
 * negates odd-frequency coefficients along the flipped axis and, for the four variants
 * that swap axes, transposes the 16x16 block.
 *   variant index: 0 orig, 1 rot90, 2 rot180, 3 rot270, 4 flipx, 5 flipy,
 *                  6 flipplus (transpose), 7 flipminus (anti-transpose)
 */
static void dihedral_variant(int variant, float a[PDQ_OUT][PDQ_OUT], float out[PDQ_OUT][PDQ_OUT]) {
    for (int i = 0; i < PDQ_OUT; i++)
        for (int j = 0; j < PDQ_OUT; j++) {
            float v = a[i][j];
            switch (variant) {
            case 0: out[i][j] = v; break;
            case 1: out[j][i] = (j & 1) ? v : -v; break;
            case 2: out[i][j] = ((i + j) & 1) ? -v : v; break;
            case 3: out[j][i] = (i & 1) ? v : -v; break;
            case 4: out[i][j] = (i & 1) ? v : -v; break;
            case 5: out[i][j] = (j & 1) ? v : -v; break;
            case 6: out[j][i] = v; break;
            default: out[j][i] = ((i + j) & 1) ? -v : v; break;
            }
        }
}

/* ------------------------------------------------------------------------ */
/* Python entry point. */

/* Quality, DCT and the requested variants' hex from a 64x64 luma buffer. */
static int finish_hash(float buf64[PDQ_DIM][PDQ_DIM], int nvariants, char hexes[8][65]) {
    float dct[PDQ_OUT][PDQ_OUT], aux[PDQ_OUT][PDQ_OUT];
    int quality = quality_metric(buf64);
    dct64to16(buf64, dct);
    for (int v = 0; v < nvariants; v++) {
        dihedral_variant(v, dct, aux);
        bits_to_hex(aux, hexes[v]);
    }
    return quality;
}

static PyObject *hex_result(char hexes[8][65], int nvariants, int quality) {
    PyObject *list = PyList_New(nvariants);
    if (!list) return NULL;
    for (int v = 0; v < nvariants; v++) {
        PyObject *s = PyUnicode_FromStringAndSize(hexes[v], 64);
        if (!s) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, v, s);
    }
    return Py_BuildValue("(Ni)", list, quality);
}

/* hash_luma64(buffer of 64x64 float32, dihedral): for callers that downsample themselves
   (fast mode); the reference does the same for a 64x64 input. */
static PyObject *py_hash_luma64(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"luma", "dihedral", NULL};
    PyObject *obj;
    Py_buffer view;
    int dihedral = 0;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p", kwlist, &obj, &dihedral)) return NULL;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) return NULL;
    if (view.itemsize != 4 || (view.format && strcmp(view.format, "f") != 0) ||
        view.len != PDQ_DIM * PDQ_DIM * 4) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "luma must be a C-contiguous 64x64 float32 buffer");
    }
    float buf64[PDQ_DIM][PDQ_DIM];
    memcpy(buf64, view.buf, sizeof buf64);
    PyBuffer_Release(&view);
    int nvariants = dihedral ? 8 : 1;
    char hexes[8][65];
    int quality = finish_hash(buf64, nvariants, hexes);
    return hex_result(hexes, nvariants, quality);
}

/* project64(luma, wc, wr, out): out = wc @ luma @ wr.T with float64 C-contiguous
   luma (h, w), wc (64, h), wr (64, w) and a float32 (64, 64) out. Fast mode's weighted
   block sums; done here rather than with numpy's BLAS, whose threads stall on a busy
   machine, for matrices this small. */
static int get_f64(PyObject *obj, Py_buffer *view, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) return -1;
    if (view->itemsize != 8 || (view->format && strcmp(view->format, "d") != 0) ||
        view->ndim != 2) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s must be a 2-D C-contiguous float64 array", name);
        return -1;
    }
    return 0;
}

static PyObject *py_project64(PyObject *self, PyObject *args) {
    PyObject *lo, *co, *ro, *oo;
    Py_buffer lv, cv, rv, ov;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOO", &lo, &co, &ro, &oo)) return NULL;
    if (get_f64(lo, &lv, "luma") != 0) return NULL;
    if (get_f64(co, &cv, "wc") != 0) {
        PyBuffer_Release(&lv);
        return NULL;
    }
    if (get_f64(ro, &rv, "wr") != 0) {
        PyBuffer_Release(&lv);
        PyBuffer_Release(&cv);
        return NULL;
    }
    if (PyObject_GetBuffer(oo, &ov, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) != 0) {
        PyBuffer_Release(&lv);
        PyBuffer_Release(&cv);
        PyBuffer_Release(&rv);
        return NULL;
    }
    const Py_ssize_t h = lv.shape[0], w = lv.shape[1];
    int ok = cv.shape[0] == PDQ_DIM && cv.shape[1] == h && rv.shape[0] == PDQ_DIM &&
             rv.shape[1] == w && ov.itemsize == 4 && ov.len == PDQ_DIM * PDQ_DIM * 4;
    double *tmp = ok ? malloc(sizeof(double) * (size_t)h * PDQ_DIM) : NULL;
    if (ok && tmp) {
        const double *L = lv.buf, *C = cv.buf, *R = rv.buf;
        float *out = ov.buf;
        Py_BEGIN_ALLOW_THREADS
        /* each weight row is non-zero only on a short run of blocks around its centre */
        Py_ssize_t r0[PDQ_DIM], r1[PDQ_DIM], c0[PDQ_DIM], c1[PDQ_DIM];
        for (int k = 0; k < PDQ_DIM; k++) {
            const double *wk = R + (Py_ssize_t)k * w;
            r0[k] = 0;
            while (r0[k] < w && wk[r0[k]] == 0.0) r0[k]++;
            r1[k] = w;
            while (r1[k] > r0[k] && wk[r1[k] - 1] == 0.0) r1[k]--;
            const double *ck = C + (Py_ssize_t)k * h;
            c0[k] = 0;
            while (c0[k] < h && ck[c0[k]] == 0.0) c0[k]++;
            c1[k] = h;
            while (c1[k] > c0[k] && ck[c1[k] - 1] == 0.0) c1[k]--;
        }
        for (Py_ssize_t i = 0; i < h; i++) {
            const double *row = L + i * w;
            for (int k = 0; k < PDQ_DIM; k++) {
                const double *wk = R + (Py_ssize_t)k * w;
                double acc = 0.0;
                for (Py_ssize_t j = r0[k]; j < r1[k]; j++) acc += row[j] * wk[j];
                tmp[i * PDQ_DIM + k] = acc;
            }
        }
        for (int a = 0; a < PDQ_DIM; a++) {
            double acc[PDQ_DIM] = {0};
            const double *ca = C + (Py_ssize_t)a * h;
            for (Py_ssize_t i = c0[a]; i < c1[a]; i++) {
                const double c = ca[i];
                for (int k = 0; k < PDQ_DIM; k++) acc[k] += c * tmp[i * PDQ_DIM + k];
            }
            for (int k = 0; k < PDQ_DIM; k++) out[a * PDQ_DIM + k] = (float)acc[k];
        }
        Py_END_ALLOW_THREADS
    }
    free(tmp);
    PyBuffer_Release(&lv);
    PyBuffer_Release(&cv);
    PyBuffer_Release(&rv);
    PyBuffer_Release(&ov);
    if (!ok) return PyErr_Format(PyExc_ValueError, "project64: mismatched shapes");
    if (!tmp) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_hash(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"pixels", "dihedral", NULL};
    PyObject *obj;
    Py_buffer view;
    int dihedral = 0;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p", kwlist, &obj, &dihedral)) return NULL;
    if (PyObject_GetBuffer(obj, &view, PyBUF_RECORDS_RO) != 0) return NULL;
    if (view.itemsize != 1 || (view.format && strcmp(view.format, "B") != 0)) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "pixels must be uint8, not format '%s'",
                            view.format ? view.format : "?");
    }
    image_in im;
    im.pixels = (const uint8_t *)view.buf;
    if (view.ndim == 2) {
        im.channels = 1;
        im.chan_stride = 0;
    } else if (view.ndim == 3 && (view.shape[2] == 3 || view.shape[2] == 4)) {
        im.channels = 3; /* a 4th channel (alpha or padding) is ignored */
        im.chan_stride = view.strides[2];
    } else {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError,
                            "pixels must have shape (height, width, 3) or (height, width), "
                            "not %d dimensions%s", view.ndim,
                            view.ndim == 3 ? " with that many channels" : "");
    }
    if (view.shape[0] > INT32_MAX / 2 || view.shape[1] > INT32_MAX / 2) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "image too large");
    }
    im.height = (int)view.shape[0];
    im.width = (int)view.shape[1];
    im.row_stride = view.strides[0];
    im.col_stride = view.strides[1];
    const int height = im.height, width = im.width;
    int nvariants = dihedral ? 8 : 1;
    char hexes[8][65];
    int quality = 0, failed = 0;

    Py_BEGIN_ALLOW_THREADS
    if (height < MIN_HASHABLE_DIM || width < MIN_HASHABLE_DIM) {
        /* the reference returns an all-zero hash of quality 0 */
        for (int v = 0; v < nvariants; v++) {
            memset(hexes[v], '0', 64);
            hexes[v][64] = '\0';
        }
        quality = 0;
    } else {
        float buf64[PDQ_DIM][PDQ_DIM];
        if (downsample64(&im, buf64, !dihedral) != 0)
            failed = 1;
        else
            quality = finish_hash(buf64, nvariants, hexes);
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&view);
    if (failed) return PyErr_NoMemory();
    return hex_result(hexes, nvariants, quality);
}

static PyMethodDef methods[] = {
    {"hash_pixels", (PyCFunction)(void (*)(void))py_hash, METH_VARARGS | METH_KEYWORDS,
     "hash_pixels(pixels, dihedral=False) -> ([hex, ...], quality)\n\n"
     "PDQ of a uint8 buffer of shape (h, w, 3) RGB, (h, w, 4) with the 4th byte ignored,\n"
     "or (h, w) grey treated as r = g = b; any strides. With dihedral, 8 hashes in the\n"
     "order orig, rot90, rot180, rot270, flipx, flipy, flipplus, flipminus."},
    {"hash_luma64", (PyCFunction)(void (*)(void))py_hash_luma64, METH_VARARGS | METH_KEYWORDS,
     "hash_luma64(luma, dihedral=False) -> ([hex, ...], quality)\n\n"
     "PDQ from an already downsampled 64x64 float32 luma image (no blur)."},
    {"project64", py_project64, METH_VARARGS,
     "project64(luma, wc, wr, out): out = wc @ luma @ wr.T (float64 in, float32 64x64 out)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pdqcore",
    "PDQ hashing kernel, bit-identical to Meta's reference C++ on the same pixels.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pdqcore(void) {
    init_tables();
    return PyModule_Create(&module);
}
