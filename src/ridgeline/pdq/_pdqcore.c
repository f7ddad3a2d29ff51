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
 * column-strided passes), runs 8 rows' running sums side by side (one row per AVX2
 * lane after an 8x8 transpose, or 8 scalar chains without AVX2), runs the column sums
 * across whole rows (8 columns per AVX2 vector), and computes only the 64 columns and
 * rows that decimation keeps in the last two passes. Each sample still sees the same
 * operations in the same order, so the results are bit-identical. Luma is computed as
 * (float)(299r + 587g + 114b) / 1000.0f, which equals the reference's double formula
 * for every 8-bit triple (checked exhaustively; see luma_mismatches). Built without
 * -ffast-math or FMA contraction; AVX2 code is chosen at run time, with a portable
 * fallback giving the same bits.
 *
 * Fast mode (ridgeline/pdq/fast.py) predicts the 64x64 downsample from a small block-
 * averaged image with project64 and hashes it with hash_luma64; only that prediction is
 * approximate, the quality/DCT/median/bits code is the same.
 *
 * The same file builds the browser's hasher (scripts/build-pdq-wasm, `make wasm`): with
 * RIDGELINE_PDQ_WASM defined there is no Python, and the entry points at the end
 * (pdq_hash, pdq_hex) take packed RGBA/RGB/grey rows from JavaScript. WebAssembly
 * floats are IEEE single/double without fused multiply-add, so the portable path
 * gives the same bits there (tests/test_selfsubmit_browser.py checks it against the
 * reference images).
 */
#ifndef RIDGELINE_PDQ_WASM
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#else
#include <stddef.h>
typedef ptrdiff_t Py_ssize_t;
#endif

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

/* Built twice, for AVX2 (8 lanes) and the baseline, chosen at load time; the lanes
   are independent columns, so each element's operations are unchanged. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define PDQ_CLONES __attribute__((target_clones("avx2", "default"), noinline))
#else
#define PDQ_CLONES
#endif

PDQ_CLONES
static void vec_add(float *restrict s, const float *restrict x, int w) {
    for (int j = 0; j < w; j++) s[j] += x[j];
}
PDQ_CLONES
static void vec_add_sub(float *restrict s, const float *restrict a,
                               const float *restrict b, int w) {
    for (int j = 0; j < w; j++) {
        s[j] += a[j];
        s[j] -= b[j];
    }
}
PDQ_CLONES
static void vec_sub(float *restrict s, const float *restrict x, int w) {
    for (int j = 0; j < w; j++) s[j] -= x[j];
}
PDQ_CLONES
static void vec_div(float *restrict out, const float *restrict s, float c, int w) {
    for (int j = 0; j < w; j++) out[j] = s[j] / c;
}

/* ------------------------------------------------------------------------ */
/* Luma rows. */

/* The reference computes (float)((r*0.299 + g*0.587) + b*0.114) in double. For 8-bit
   inputs that equals (float)(299r + 587g + 114b) / 1000.0f, one correctly rounded float
   division of an exact integer: checked exhaustively over all 2^24 (r, g, b) triples
   (tests/test_pdq.py re-checks it through luma_mismatches). The integer form vectorises. */
static void luma_packed_scalar(const uint8_t *restrict px, int from, int width, int step,
                               float *restrict out) {
    for (int j = from; j < width; j++) {
        const uint8_t *p = px + (Py_ssize_t)step * j;
        int v = 299 * p[0] + 587 * p[1] + 114 * p[2];
        out[j] = (float)v / 1000.0f;
    }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define PDQ_HAVE_AVX2_LUMA 1
static int use_avx2 = 0;

/* 8 pixels per step: each 128-bit lane holds 4 pixels; byte shuffles make (r, g) 16-bit
   pairs and b words, madd forms 299r + 587g and 114b in 32-bit lanes. `step` is 3
   (RGB) or 4 (RGBX); the loads read at most 4 bytes past the 8th pixel, so the loop
   stops early enough and the scalar tail finishes. */
__attribute__((target("avx2"))) static void luma_packed_avx2(const uint8_t *restrict px,
                                                             int width, int step,
                                                             float *restrict out) {
    const __m256i rg_mask = step == 3
        ? _mm256_setr_epi8(0, -1, 1, -1, 3, -1, 4, -1, 6, -1, 7, -1, 9, -1, 10, -1,
                           0, -1, 1, -1, 3, -1, 4, -1, 6, -1, 7, -1, 9, -1, 10, -1)
        : _mm256_setr_epi8(0, -1, 1, -1, 4, -1, 5, -1, 8, -1, 9, -1, 12, -1, 13, -1,
                           0, -1, 1, -1, 4, -1, 5, -1, 8, -1, 9, -1, 12, -1, 13, -1);
    const __m256i b_mask = step == 3
        ? _mm256_setr_epi8(2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1,
                           2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1)
        : _mm256_setr_epi8(2, -1, -1, -1, 6, -1, -1, -1, 10, -1, -1, -1, 14, -1, -1, -1,
                           2, -1, -1, -1, 6, -1, -1, -1, 10, -1, -1, -1, 14, -1, -1, -1);
    /* 16-bit words (r, g) per pixel; madd gives 299r + 587g */
    const __m256i rg_mul = _mm256_set1_epi32((587 << 16) | 299);
    const __m256i b_mul = _mm256_set1_epi32(114);
    const __m256 thousand = _mm256_set1_ps(1000.0f);
    int j = 0;
    /* the high lane loads 16 bytes from pixel j + 4 */
    for (; j + 8 <= width && (Py_ssize_t)step * (j + 4) + 16 <= (Py_ssize_t)step * width;
         j += 8) {
        const uint8_t *p = px + (Py_ssize_t)step * j;
        __m128i lo = _mm_loadu_si128((const __m128i *)p);
        __m128i hi = _mm_loadu_si128((const __m128i *)(p + 4 * step));
        __m256i x = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
        __m256i rg = _mm256_madd_epi16(_mm256_shuffle_epi8(x, rg_mask), rg_mul);
        __m256i bb = _mm256_mullo_epi32(_mm256_shuffle_epi8(x, b_mask), b_mul);
        __m256 v = _mm256_cvtepi32_ps(_mm256_add_epi32(rg, bb));
        _mm256_storeu_ps(out + j, _mm256_div_ps(v, thousand));
    }
    luma_packed_scalar(px, j, width, step, out);
}
/* 8x8 transpose of float rows (pure data movement). */
__attribute__((target("avx2"))) static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/*
 * The row box filter on 8 rows at once, one row per SIMD lane: the rows are transposed
 * into T (T[x * 8 + r] = in[r][x]), the running sums run over T with 8-lane adds and
 * subtracts (each lane sees exactly the scalar sequence s += in[ri]; s -= in[li]), and
 * O receives the sums in the same interleaved layout, divided by the window count when
 * `divide` (the same single float division divide_row does).
 */
__attribute__((target("avx2"))) static void box_rows_avx2(const float *const in[BATCH],
                                                          const box_plan *p, float *T,
                                                          float *O, int divide) {
    const int n = p->n;
    int x = 0;
    for (; x + 8 <= n; x += 8) {
        __m256 r[8];
        for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(in[k] + x);
        transpose8(r);
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(T + (size_t)(x + k) * 8, r[k]);
    }
    for (; x < n; x++)
        for (int k = 0; k < 8; k++) T[(size_t)x * 8 + k] = in[k][x];

    __m256 s = _mm256_setzero_ps();
    int ri = 0, li = 0, oi = 0;
    for (int t = 0; t < p->p1; t++, ri++) s = _mm256_add_ps(s, _mm256_loadu_ps(T + (size_t)ri * 8));
#define PUT()                                                                              \
    _mm256_storeu_ps(O + (size_t)oi * 8,                                                   \
                     divide ? _mm256_div_ps(s, _mm256_set1_ps(plan_count(p, oi))) : s)
    for (int t = 0; t < p->p2; t++, ri++, oi++) {
        s = _mm256_add_ps(s, _mm256_loadu_ps(T + (size_t)ri * 8));
        PUT();
    }
    for (int t = 0; t < p->p3; t++, ri++, li++, oi++) {
        s = _mm256_add_ps(s, _mm256_loadu_ps(T + (size_t)ri * 8));
        s = _mm256_sub_ps(s, _mm256_loadu_ps(T + (size_t)li * 8));
        PUT();
    }
    for (int t = 0; t < p->p4; t++, li++, oi++) {
        s = _mm256_sub_ps(s, _mm256_loadu_ps(T + (size_t)li * 8));
        PUT();
    }
#undef PUT
}

/* Interleaved O (n x 8) back to 8 rows. */
__attribute__((target("avx2"))) static void untranspose_avx2(const float *O, int n,
                                                             float *const out[BATCH]) {
    int x = 0;
    for (; x + 8 <= n; x += 8) {
        __m256 r[8];
        for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(O + (size_t)(x + k) * 8);
        transpose8(r);
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(out[k] + x, r[k]);
    }
    for (; x < n; x++)
        for (int k = 0; k < 8; k++) out[k][x] = O[(size_t)x * 8 + k];
}
#endif

#if defined(__wasm_simd128__)
/* WebAssembly SIMD (the browser build, scripts/build-pdq-wasm): the same operations as
   the AVX2 code above, 4 lanes wide. Each lane is one pixel (luma) or one row (the row
   box filter), and sees exactly the scalar sequence of operations, so the bits are the
   same as the portable path's. */
#include <wasm_simd128.h>
#define PDQ_HAVE_WASM_SIMD 1

/* RGBA/RGBX: 4 pixels per load; 299r + 587g + 114b in 32-bit lanes, then the one
   correctly rounded float division, as luma_packed_scalar. */
static void luma_packed_wasm(const uint8_t *restrict px, int width, int step,
                             float *restrict out) {
    int j = 0;
    if (step == 4) {
        const v128_t mask = wasm_i32x4_splat(0xff);
        const v128_t k299 = wasm_i32x4_splat(299), k587 = wasm_i32x4_splat(587);
        const v128_t k114 = wasm_i32x4_splat(114);
        const v128_t thousand = wasm_f32x4_splat(1000.0f);
        for (; j + 4 <= width; j += 4) {
            v128_t x = wasm_v128_load(px + 4 * (size_t)j);
            v128_t r = wasm_v128_and(x, mask);
            v128_t g = wasm_v128_and(wasm_u32x4_shr(x, 8), mask);
            v128_t b = wasm_v128_and(wasm_u32x4_shr(x, 16), mask);
            v128_t v = wasm_i32x4_add(wasm_i32x4_add(wasm_i32x4_mul(r, k299),
                                                     wasm_i32x4_mul(g, k587)),
                                      wasm_i32x4_mul(b, k114));
            wasm_v128_store(out + j, wasm_f32x4_div(wasm_f32x4_convert_i32x4(v), thousand));
        }
    }
    luma_packed_scalar(px, j, width, step, out);
}

/* 4x4 transpose (pure data movement). */
static inline void transpose4(v128_t *a, v128_t *b, v128_t *c, v128_t *d) {
    v128_t t0 = wasm_i32x4_shuffle(*a, *b, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(*a, *b, 2, 6, 3, 7);
    v128_t t2 = wasm_i32x4_shuffle(*c, *d, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(*c, *d, 2, 6, 3, 7);
    *a = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5);
    *b = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
    *c = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5);
    *d = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
}

/* box_rows_avx2's layout and sequence: T[x * 8 + r] = in[r][x]; two 4-lane running
   sums (rows 0-3 and 4-7); O[oi * 8 + r] the sums, divided by the window count when
   `divide`. */
static void box_rows_wasm(const float *const in[BATCH], const box_plan *p, float *T, float *O,
                          int divide) {
    const int n = p->n;
    int x = 0;
    for (; x + 4 <= n; x += 4)
        for (int h = 0; h < 8; h += 4) {
            v128_t a = wasm_v128_load(in[h] + x), b = wasm_v128_load(in[h + 1] + x);
            v128_t c = wasm_v128_load(in[h + 2] + x), d = wasm_v128_load(in[h + 3] + x);
            transpose4(&a, &b, &c, &d);
            wasm_v128_store(T + (size_t)x * 8 + h, a);
            wasm_v128_store(T + (size_t)(x + 1) * 8 + h, b);
            wasm_v128_store(T + (size_t)(x + 2) * 8 + h, c);
            wasm_v128_store(T + (size_t)(x + 3) * 8 + h, d);
        }
    for (; x < n; x++)
        for (int k = 0; k < 8; k++) T[(size_t)x * 8 + k] = in[k][x];

    v128_t lo = wasm_f32x4_splat(0.0f), hi = wasm_f32x4_splat(0.0f);
    int ri = 0, li = 0, oi = 0;
#define LOAD_LO(i) wasm_v128_load(T + (size_t)(i) * 8)
#define LOAD_HI(i) wasm_v128_load(T + (size_t)(i) * 8 + 4)
#define PUT()                                                                     \
    do {                                                                          \
        v128_t c_ = wasm_f32x4_splat(plan_count(p, oi));                          \
        wasm_v128_store(O + (size_t)oi * 8, divide ? wasm_f32x4_div(lo, c_) : lo); \
        wasm_v128_store(O + (size_t)oi * 8 + 4, divide ? wasm_f32x4_div(hi, c_) : hi); \
    } while (0)
    for (int t = 0; t < p->p1; t++, ri++) {
        lo = wasm_f32x4_add(lo, LOAD_LO(ri));
        hi = wasm_f32x4_add(hi, LOAD_HI(ri));
    }
    for (int t = 0; t < p->p2; t++, ri++, oi++) {
        lo = wasm_f32x4_add(lo, LOAD_LO(ri));
        hi = wasm_f32x4_add(hi, LOAD_HI(ri));
        PUT();
    }
    for (int t = 0; t < p->p3; t++, ri++, li++, oi++) {
        lo = wasm_f32x4_sub(wasm_f32x4_add(lo, LOAD_LO(ri)), LOAD_LO(li));
        hi = wasm_f32x4_sub(wasm_f32x4_add(hi, LOAD_HI(ri)), LOAD_HI(li));
        PUT();
    }
    for (int t = 0; t < p->p4; t++, li++, oi++) {
        lo = wasm_f32x4_sub(lo, LOAD_LO(li));
        hi = wasm_f32x4_sub(hi, LOAD_HI(li));
        PUT();
    }
#undef PUT
#undef LOAD_LO
#undef LOAD_HI
}

/* Interleaved O (n x 8) back to 8 rows. */
static void untranspose_wasm(const float *O, int n, float *const out[BATCH]) {
    int x = 0;
    for (; x + 4 <= n; x += 4)
        for (int h = 0; h < 8; h += 4) {
            v128_t a = wasm_v128_load(O + (size_t)x * 8 + h);
            v128_t b = wasm_v128_load(O + (size_t)(x + 1) * 8 + h);
            v128_t c = wasm_v128_load(O + (size_t)(x + 2) * 8 + h);
            v128_t d = wasm_v128_load(O + (size_t)(x + 3) * 8 + h);
            transpose4(&a, &b, &c, &d);
            wasm_v128_store(out[h] + x, a);
            wasm_v128_store(out[h + 1] + x, b);
            wasm_v128_store(out[h + 2] + x, c);
            wasm_v128_store(out[h + 3] + x, d);
        }
    for (; x < n; x++)
        for (int k = 0; k < 8; k++) out[k][x] = O[(size_t)x * 8 + k];
}
#endif

static void luma_packed(const uint8_t *px, int width, int step, float *out) {
#if defined(PDQ_HAVE_WASM_SIMD)
    luma_packed_wasm(px, width, step, out);
#else
#ifdef PDQ_HAVE_AVX2_LUMA
    if (use_avx2) {
        luma_packed_avx2(px, width, step, out);
        return;
    }
#endif
    luma_packed_scalar(px, 0, width, step, out);
#endif
}

static void luma_row_rgb(const uint8_t *px, int width, Py_ssize_t col_stride,
                         Py_ssize_t chan_stride, float *out) {
    if (col_stride == 3 && chan_stride == 1) { /* the common packed RGB case */
        luma_packed(px, width, 3, out);
        return;
    }
    if (col_stride == 4 && chan_stride == 1) { /* RGBA / RGBX */
        luma_packed(px, width, 4, out);
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
    /* row passes 8 rows per SIMD vector: transposed input and output (w x 8 each) */
    float *tr_in = malloc(sizeof(float) * wpad * BATCH);
    float *tr_out = malloc(sizeof(float) * wpad * BATCH);
#ifdef PDQ_HAVE_AVX2_LUMA
    const int ROWS_SIMD = use_avx2;
#define ROWS_SIMD_SUMS(div) box_rows_avx2(in_ptr, &row_plan, tr_in, tr_out, (div))
#define ROWS_SIMD_BACK() untranspose_avx2(tr_out, w, out_ptr)
#elif defined(PDQ_HAVE_WASM_SIMD)
    const int ROWS_SIMD = 1;
#define ROWS_SIMD_SUMS(div) box_rows_wasm(in_ptr, &row_plan, tr_in, tr_out, (div))
#define ROWS_SIMD_BACK() untranspose_wasm(tr_out, w, out_ptr)
#else
    const int ROWS_SIMD = 0;
#define ROWS_SIMD_SUMS(div) ((void)0)
#define ROWS_SIMD_BACK() ((void)0)
#endif
    if (!ring || !luma || !colsum || !pass2 || !pass3 || !scratch_in || !scratch_out || !mid ||
        !tr_in || !tr_out) {
        free(ring); free(luma); free(colsum); free(pass2); free(pass3);
        free(scratch_in); free(scratch_out); free(mid); free(tr_in); free(tr_out);
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
        if (ROWS_SIMD) {                                                          \
            ROWS_SIMD_SUMS(0);                                                    \
            for (int r_ = 0; r_ < pending; r_++) {                                \
                float *dst = mid + (size_t)(pending_first + r_) * PDQ_DIM;        \
                for (int k_ = 0; k_ < PDQ_DIM; k_++)                              \
                    dst[k_] = tr_out[(size_t)col_idx[k_] * BATCH + r_] /          \
                              plan_count(&row_plan, col_idx[k_]);                 \
            }                                                                     \
        } else {                                                                  \
            box_rows_sums(in_ptr, out_ptr, &row_plan);                            \
            for (int r_ = 0; r_ < pending; r_++) {                                \
                float *dst = mid + (size_t)(pending_first + r_) * PDQ_DIM;        \
                const float *src = pass3 + wpad * r_;                             \
                for (int k_ = 0; k_ < PDQ_DIM; k_++)                              \
                    dst[k_] = src[col_idx[k_]] / plan_count(&row_plan, col_idx[k_]); \
            }                                                                     \
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
        if (ROWS_SIMD) {                                                          \
            ROWS_SIMD_SUMS(1);                                                    \
            ROWS_SIMD_BACK();                                                     \
        } else {                                                                  \
            box_rows_sums(in_ptr, out_ptr, &row_plan);                            \
            for (int r_ = 0; r_ < nb_; r_++) divide_row(RING(produced + r_), &row_plan); \
        }                                                                         \
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
#undef ROWS_SIMD_SUMS
#undef ROWS_SIMD_BACK

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
    free(scratch_in); free(scratch_out); free(mid); free(tr_in); free(tr_out);
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

#ifndef RIDGELINE_PDQ_WASM
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

/* ------------------------------------------------------------------------ */
/* Zero-copy access to a Pillow image's pixels through the Arrow C data interface
   (Image.__arrow_c_array__): RGB/RGBA/RGBX images are exported as fixed-size lists of 4
   uint8 (the layout Pillow stores them in), L as plain uint8. np.asarray(image) would
   instead pack a fresh 3-byte-per-pixel copy (about 2 ms per megapixel with its page
   faults); the hasher reads the 4-byte layout directly and ignores the 4th byte. */

struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

/* arrow_address(schema_capsule, array_capsule, npixels) -> (address, bytes per pixel) */
static PyObject *py_arrow_address(PyObject *self, PyObject *args) {
    PyObject *sc, *ac;
    long long npixels;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOL", &sc, &ac, &npixels)) return NULL;
    struct ArrowSchema *schema = PyCapsule_GetPointer(sc, "arrow_schema");
    if (!schema) return NULL;
    struct ArrowArray *array = PyCapsule_GetPointer(ac, "arrow_array");
    if (!array) return NULL;
    if (!schema->release || !array->release || !schema->format)
        return PyErr_Format(PyExc_ValueError, "arrow data already released");
    if (array->length != npixels || array->offset != 0 || array->null_count > 0)
        return PyErr_Format(PyExc_ValueError, "arrow array does not cover the image");
    const void *data = NULL;
    int bpp = 0;
    if (strcmp(schema->format, "C") == 0 && array->n_buffers == 2 && array->buffers) {
        data = array->buffers[1];
        bpp = 1;
    } else if (strcmp(schema->format, "+w:4") == 0 && schema->n_children == 1 &&
               schema->children && schema->children[0]->format &&
               strcmp(schema->children[0]->format, "C") == 0 && array->n_children == 1 &&
               array->children) {
        const struct ArrowArray *child = array->children[0];
        if (child->length == 4 * npixels && child->offset == 0 && child->n_buffers == 2 &&
            child->buffers && child->null_count <= 0) {
            data = child->buffers[1];
            bpp = 4;
        }
    }
    if (!data) return PyErr_Format(PyExc_ValueError, "unsupported arrow pixel layout");
    return Py_BuildValue("(Ki)", (unsigned long long)(uintptr_t)data, bpp);
}

/* luma_mismatches(): how many of the 2^24 (r, g, b) triples the packed-row luma code
   (RGB and RGBX layouts, SIMD and scalar parts) maps to a different float than the
   reference's double formula. Zero by construction; kept so a test proves it. */
static PyObject *py_luma_mismatches(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    long long bad = 0;
    uint8_t row3[256 * 3], row4[256 * 4];
    float out3[256], out4[256];
    Py_BEGIN_ALLOW_THREADS
    for (int r = 0; r < 256; r++)
        for (int g = 0; g < 256; g++) {
            for (int b = 0; b < 256; b++) {
                row3[3 * b] = row4[4 * b] = (uint8_t)r;
                row3[3 * b + 1] = row4[4 * b + 1] = (uint8_t)g;
                row3[3 * b + 2] = row4[4 * b + 2] = (uint8_t)b;
                row4[4 * b + 3] = (uint8_t)(r ^ b);
            }
            luma_row_rgb(row3, 256, 3, 1, out3);
            luma_row_rgb(row4, 256, 4, 1, out4);
            for (int b = 0; b < 256; b++) {
                float ref = (float)((luma_r[r] + luma_g[g]) + luma_b[b]);
                bad += (out3[b] != ref) + (out4[b] != ref);
            }
        }
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(bad);
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
    {"arrow_address", py_arrow_address, METH_VARARGS,
     "arrow_address(schema_capsule, array_capsule, npixels) -> (address, bytes_per_pixel)\n\n"
     "Address of a Pillow image's pixels exported through the Arrow C data interface."},
    {"luma_mismatches", py_luma_mismatches, METH_NOARGS,
     "luma_mismatches() -> int: triples where the fast luma differs from the reference's."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pdqcore",
    "PDQ hashing kernel, bit-identical to Meta's reference C++ on the same pixels.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pdqcore(void) {
    init_tables();
#ifdef PDQ_HAVE_AVX2_LUMA
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") != 0;
    /* RIDGELINE_PDQ_NO_SIMD=1 forces the portable path (tests compare the two) */
    const char *no_simd = getenv("RIDGELINE_PDQ_NO_SIMD");
    if (no_simd && *no_simd && strcmp(no_simd, "0") != 0) use_avx2 = 0;
#endif
    return PyModule_Create(&module);
}
#else /* RIDGELINE_PDQ_WASM: the browser's entry points */
#include <emscripten/emscripten.h>

static char wasm_hex[8][65];
static int wasm_ready = 0;

/* A buffer JavaScript fills with pixels (freed with pdq_free). */
EMSCRIPTEN_KEEPALIVE uint8_t *pdq_alloc(int bytes) { return bytes > 0 ? malloc((size_t)bytes) : NULL; }
EMSCRIPTEN_KEEPALIVE void pdq_free(void *p) { free(p); }

/* pdq_hash(pixels, width, height, channels, dihedral): PDQ of packed rows of
   `channels` bytes a pixel (4 RGBA with the 4th ignored, 3 RGB, 1 grey as r = g = b),
   as hash_pixels does. Returns the quality (0-100), or -1 for bad arguments or out of
   memory; the hex digits of the hash (8 with dihedral) are read with pdq_hex(i). */
EMSCRIPTEN_KEEPALIVE int pdq_hash(const uint8_t *pixels, int width, int height, int channels,
                                  int dihedral) {
    if (!wasm_ready) {
        init_tables();
        wasm_ready = 1;
    }
    if (!pixels || width <= 0 || height <= 0 || !(channels == 1 || channels == 3 || channels == 4))
        return -1;
    image_in im;
    im.pixels = pixels;
    im.height = height;
    im.width = width;
    im.channels = channels == 1 ? 1 : 3;
    im.chan_stride = channels == 1 ? 0 : 1;
    im.col_stride = channels;
    im.row_stride = (Py_ssize_t)width * channels;
    int nvariants = dihedral ? 8 : 1;
    if (height < MIN_HASHABLE_DIM || width < MIN_HASHABLE_DIM) {
        for (int v = 0; v < nvariants; v++) {
            memset(wasm_hex[v], '0', 64);
            wasm_hex[v][64] = '\0';
        }
        return 0;
    }
    float buf64[PDQ_DIM][PDQ_DIM];
    if (downsample64(&im, buf64, !dihedral) != 0) return -1;
    return finish_hash(buf64, nvariants, wasm_hex);
}

EMSCRIPTEN_KEEPALIVE const char *pdq_hex(int variant) {
    return wasm_hex[variant >= 0 && variant < 8 ? variant : 0];
}
#endif
