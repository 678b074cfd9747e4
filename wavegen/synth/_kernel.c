/* The WaveNet's cached step for CPUs, in C: the fast path of wavegen/synth/fast.py. It computes what
 * WaveNet.step (each ResidualLayer.step, then the head) computes, for a block of samples of one tick
 * and a batch of streams; fast.py's numba kernel is the same computation, for machines without a compiler.
 *
 * Built at install time (setup.py) with -O3 -march=native -ffast-math, loaded with ctypes; without a
 * compiler, wavegen uses the numba kernel instead. Matrix products are written with GCC vector types as
 * wide as the target's registers (16 floats with AVX-512, 8 with AVX2, 4 with SSE or NEON), in tiles of
 * streams x output vectors sized to the number of registers, so a loaded weight vector feeds every
 * stream of a block and the accumulators stay in registers across the inputs. Nothing in it is
 * specific to one instruction set: the same source builds for x86-64 (v2, v3, v4) and 64-bit ARM.
 *
 * Weights are input-major: w[i * n_out + o] multiplies input i into output o. Built with WG_WEIGHT_F16
 * (setup.py's second library, _kernel_f16, through _kernel_f16.c), the same source stores the weights in
 * IEEE half precision and widens each vector to float as it loads it (see `wt` below); the sums, the
 * state, the biases and the tick's conditioning row stay float. Built with WG_WEIGHT_BF16 (_kernel_bf16),
 * the matrix products take bf16 weights and bf16 inputs in pairs and sum in float: AVX512_BF16's
 * vdpbf16ps (or ARM's bfdot) does 2 multiply-adds per float lane in one instruction, elsewhere the same
 * arithmetic is written out (see dot2 below). They come in one
 * structure (wg_weights, built once per model) and each call's state and inputs in another (wg_block);
 * fast.py mirrors both with ctypes.Structure, field for field, and checks the mirrors against
 * wg_layout() when it loads the library.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The vector: as wide as the target's registers, so that no vector is split into halves the compiler
 * then spills. NREG is how many such registers there are; the tiles below keep their accumulators,
 * the loaded weights and one broadcast input inside that budget. */
#if defined(__AVX512F__)
#define VBYTES 64
#define NREG 32
#elif defined(__AVX__)
#define VBYTES 32
#define NREG 16
#elif defined(__aarch64__)
#define VBYTES 16
#define NREG 32
#else /* SSE2 (any x86-64), other 128-bit SIMD, or scalar code through GCC's lowering */
#define VBYTES 16
#define NREG 16
#endif
#define VL (VBYTES / 4)

typedef float vf __attribute__((vector_size(VBYTES)));
typedef float vf_u __attribute__((vector_size(VBYTES), aligned(4), may_alias));  /* for unaligned access */

static inline vf ld(const float *p) { return *(const vf_u *)p; }
static inline void st(float *p, vf v) { *(vf_u *)p = v; }
static inline vf bc(float x) { return (vf){0} + x; }

/* The weights' element type `wt`, and ldw(p), the VL weights at p as a float vector; w2f, one weight.
 * float, or with WG_WEIGHT_F16 IEEE half held as its 16 bits: at batch 1 the step reads every weight once
 * per sample from L3 (about 2.7 MB of floats for the reference network), so half the bytes is what can
 * make it faster. The conversion is exact: F16C's vcvtph2ps (x86-64-v3 and AVX-512), NEON's fcvtl (64-bit
 * ARM), else (x86-64-v2 and older, other targets) a portable bit conversion, correct but slow. */
#if defined(WG_WEIGHT_F16) && defined(WG_WEIGHT_BF16)
#error "build with one of WG_WEIGHT_F16 and WG_WEIGHT_BF16"
#endif
#ifdef WG_WEIGHT_F16
typedef uint16_t wt;
#define WG_WFORMAT 1
#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
static inline float w2f(wt h) { return _cvtsh_ss(h); }
#if VL == 16
static inline vf ldw(const wt *p) { return (vf)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
#else
static inline vf ldw(const wt *p) { return (vf)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
#endif
#elif defined(__aarch64__)
#include <arm_neon.h>
static inline float w2f(wt h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }
static inline vf ldw(const wt *p) { return (vf)vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
#else
static inline float w2f(wt h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) {  /* zero or subnormal: m * 2^-24, exact in float */
        const float f = (float)m * 0x1p-24f;
        return sign ? -f : f;
    }
    const uint32_t bits = sign | (e == 0x1f ? 0x7f800000u : (e + 112) << 23) | m << 13;  /* inf/nan, normal */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
static inline vf ldw(const wt *p)
{
    vf v;
    for (int k = 0; k < VL; k++) v[k] = w2f(p[k]);
    return v;
}
#endif
#elif defined(WG_WEIGHT_BF16)
/* bf16: the top 16 bits of a float, so widening is a shift. The rows the step adds whole (the embedding,
 * the excitation) are plain bf16; the matrices are in input pairs (below). */
typedef uint16_t wt;
#define WG_WFORMAT 2
typedef uint16_t vh __attribute__((vector_size(VBYTES / 2)));
typedef uint16_t vh_u __attribute__((vector_size(VBYTES / 2), aligned(2), may_alias));
typedef uint32_t vu __attribute__((vector_size(VBYTES)));
typedef uint32_t vu_u __attribute__((vector_size(VBYTES), aligned(4), may_alias));
static inline float bits_f(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
static inline float w2f(wt h) { return bits_f((uint32_t)h << 16); }
static inline vf ldw(const wt *p) { return (vf)(__builtin_convertvector(*(const vh_u *)p, vu) << 16); }
#else
typedef float wt;
#define WG_WFORMAT 0
static inline float w2f(wt w) { return w; }
static inline vf ldw(const wt *p) { return ld(p); }
#endif

#ifndef WG_WEIGHT_BF16
/* One tile of H[b, o] += sum_i X[b, i] * W[i, o]: SB streams x OV vectors of outputs, from output o.
 * SB * OV accumulators + OV weight vectors + 1 broadcast must fit in NREG registers; with one stream
 * (SB = 1) each weight vector feeds a single multiply-add, which reads it straight from memory (a half
 * one, from the register its conversion lands in), so the weights need no registers of their own. */
#define UNROLL _Pragma("GCC unroll 16")  /* the tile's loops unrolled whole: its arrays become registers */
#define TILE_BODY(SB, OV)                                                                                 \
    static inline void tile_##SB##x##OV(float *H, int ldh, const float *X, int ldx, const wt *W,          \
                                        int n_in, int n_out, int o)                                       \
    {                                                                                                     \
        vf a[SB][OV];                                                                                     \
        UNROLL for (int s = 0; s < SB; s++)                                                               \
            UNROLL for (int v = 0; v < OV; v++) a[s][v] = ld(H + s * ldh + o + v * VL);                   \
        for (int i = 0; i < n_in; i++) {                                                                  \
            const wt *w = W + (int64_t)i * n_out + o;                                                     \
            vf wv[OV];                                                                                    \
            UNROLL for (int v = 0; v < OV; v++) wv[v] = ldw(w + v * VL);                                  \
            UNROLL for (int s = 0; s < SB; s++) {                                                         \
                const vf xb = bc(X[s * ldx + i]);                                                         \
                UNROLL for (int v = 0; v < OV; v++) a[s][v] += wv[v] * xb;                                \
            }                                                                                             \
        }                                                                                                 \
        UNROLL for (int s = 0; s < SB; s++)                                                               \
            UNROLL for (int v = 0; v < OV; v++) st(H + s * ldh + o + v * VL, a[s][v]);                    \
    }

/* the tiles per register budget: (streams x vectors) for blocks of 8, 4 and 1 streams */
#if NREG >= 32
#define ROW8 1  /* blocks of 8 streams */
#define OV8 2   /* 16 accumulators + 2 weights + 1 broadcast of 32 */
#define OV4 4   /* 16 + 4 + 1 */
#define OV1 8   /*  8 + 8 + 1 */
#else
#define ROW8 0  /* no blocks of 8: 8 x 1 (8 accumulators + 1 weight + 1 broadcast) fed 8 multiply-adds with
                 * 9 loads; 4 x 3 feeds 12 with 7, and 12 chains hide the multiply-add's latency better
                 * (batch 16 on two cores of a Zen 5, x86-64-v3 build: 1.12x with float weights, 1.15x fp16) */
#define OV4 3   /* 12 + 3 + 1 of 16; the outputs past the last whole tile in 4 x 2, then 4 x 1 */
#define OV1 8   /*  8 + 1 (weights from memory, above): 8 chains of multiply-adds hide their latency, and
                 *  64, 128 and 256 outputs are whole tiles (with 6, the last 2 of 16 vectors of a 128-wide
                 *  product ran 1 at a time, one dependent chain each: batch 1 was bound by that latency) */
#endif
#define TILE(SB, OV) TILE_BODY(SB, OV)  /* (one more level, so that OV8 and the others are expanded) */
#if ROW8
TILE(8, OV8)
#if OV8 > 1
TILE(8, 1)
#endif
#endif
TILE(4, OV4)
TILE(1, OV1)
#if OV4 > 2
TILE(4, 2)
#endif
TILE(4, 1)
TILE(1, 1)
#define TILE_NAME(SB, OV) tile_##SB##x##OV
#define CALL(SB, OV) TILE_NAME(SB, OV)

/* the columns o .. n_out - 1 past the last whole vector, one stream at a time */
static void tail_cols(float *H, int ldh, const float *X, int ldx, const wt *W, int SB, int n_in, int n_out,
                      int o)
{
    for (; o < n_out; o++)
        for (int s = 0; s < SB; s++) {
            float acc = H[s * ldh + o];
            for (int i = 0; i < n_in; i++) acc += w2f(W[(int64_t)i * n_out + o]) * X[s * ldx + i];
            H[s * ldh + o] = acc;
        }
}

/* H[b, o] += sum_i X[b, i] * W[i, o] for b < B, o < n_out; H rows ldh apart, X rows ldx apart; xs:
 * scratch of B * (n_in / 2 + 1) words (the bf16 build's inputs in pairs; unused here).
 * Streams in blocks of 8 (where ROW8), then 4, then 1; outputs in tiles of the block's width, then (4
 * streams, OV4 > 2) pairs of vectors, then single vectors, then single columns. Each loaded weight vector
 * feeds a whole block of streams; every output sums its inputs in the same order whatever the tile. */
static void gemm_acc(float *H, int ldh, const float *X, int ldx, const wt *W, int B, int n_in, int n_out,
                     uint32_t *xs)
{
    (void)xs;  /* the bf16 build's scratch */
#define ROWS(SB, OV)                                                                                      \
    for (; b + SB <= B; b += SB) {                                                                        \
        float *h = H + (int64_t)b * ldh;                                                                  \
        const float *x = X + (int64_t)b * ldx;                                                            \
        int o = 0;                                                                                        \
        for (; o + OV * VL <= n_out; o += OV * VL) CALL(SB, OV)(h, ldh, x, ldx, W, n_in, n_out, o);       \
        PAIRS_##SB                                                                                        \
        for (; o + VL <= n_out; o += VL) CALL(SB, 1)(h, ldh, x, ldx, W, n_in, n_out, o);                  \
        tail_cols(h, ldh, x, ldx, W, SB, n_in, n_out, o);                                                 \
    }
#if OV4 > 2
#define PAIRS_4 for (; o + 2 * VL <= n_out; o += 2 * VL) tile_4x2(h, ldh, x, ldx, W, n_in, n_out, o);
#else
#define PAIRS_4
#endif
#define PAIRS_8
#define PAIRS_1
    int b = 0;
#if ROW8
    ROWS(8, OV8)
#endif
    ROWS(4, OV4)
    ROWS(1, OV1)
#undef ROWS
#undef PAIRS_4
#undef PAIRS_8
#undef PAIRS_1
}

#else
/* The bf16 build's products, H[b, o] += sum_i X[b, i] * W[i, o], with W in input pairs: the 32-bit word
 * W2[p * n_out + o] holds W[2p, o] in its low half and W[2p + 1, o] in its high half (a zero row pads an
 * odd n_in), so one vector of words is VL outputs of two inputs; the inputs are rounded to bf16 and
 * packed the same way, two to a word. dot2(acc, x, w) adds w_lo * x_lo + w_hi * x_hi lane by lane:
 * vdpbf16ps with AVX512_BF16 (one instruction for 2 * VL multiply-adds, where fp16 weights take a
 * conversion and an FMA for VL), bfdot on ARM with BF16, else widened by shifts and two FMAs. */
#if defined(__AVX512BF16__) && VL == 16
#include <immintrin.h>
#define DOT2_NATIVE 1
static inline vf dot2(vf acc, uint32_t x, const uint32_t *w)
{
    return (vf)_mm512_dpbf16_ps((__m512)acc, (__m512bh)_mm512_set1_epi32((int)x), (__m512bh)_mm512_loadu_si512(w));
}
#elif defined(__AVX512BF16__) && defined(__AVX512VL__) && VL == 8
#include <immintrin.h>
#define DOT2_NATIVE 1
static inline vf dot2(vf acc, uint32_t x, const uint32_t *w)
{
    return (vf)_mm256_dpbf16_ps((__m256)acc, (__m256bh)_mm256_set1_epi32((int)x),
                                (__m256bh)_mm256_loadu_si256((const __m256i *)w));
}
#elif defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC) && VL == 4
#include <arm_neon.h>
#define DOT2_NATIVE 1
static inline vf dot2(vf acc, uint32_t x, const uint32_t *w)
{
    return (vf)vbfdotq_f32((float32x4_t)acc, vreinterpretq_bf16_u32(vld1q_u32(w)),
                           vreinterpretq_bf16_u32(vdupq_n_u32(x)));
}
#else
#define DOT2_NATIVE 0
static inline vf dot2(vf acc, uint32_t x, const uint32_t *w)
{
    const vu b = *(const vu_u *)w;
    return acc + (vf)(b << 16) * bits_f(x << 16) + (vf)(b & 0xffff0000u) * bits_f(x & 0xffff0000u);
}
#endif

/* float -> bf16 bits, to nearest, ties to even (as torch's .bfloat16() and vcvtneps2bf16) */
static inline uint32_t bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

#define UNROLL _Pragma("GCC unroll 16")
#define PTILE_BODY(SB, OV)                                                                                \
    static inline void tile_##SB##x##OV(float *H, int ldh, const uint32_t *X, int ldx, const uint32_t *W, \
                                        int n_pairs, int n_out, int o)                                    \
    {                                                                                                     \
        vf a[SB][OV];                                                                                     \
        UNROLL for (int s = 0; s < SB; s++)                                                               \
            UNROLL for (int v = 0; v < OV; v++) a[s][v] = ld(H + s * ldh + o + v * VL);                   \
        for (int p = 0; p < n_pairs; p++) {                                                               \
            const uint32_t *w = W + (int64_t)p * n_out + o;                                               \
            UNROLL for (int s = 0; s < SB; s++) {                                                         \
                const uint32_t x = X[s * ldx + p];                                                        \
                UNROLL for (int v = 0; v < OV; v++) a[s][v] = dot2(a[s][v], x, w + v * VL);               \
            }                                                                                             \
        }                                                                                                 \
        UNROLL for (int s = 0; s < SB; s++)                                                               \
            UNROLL for (int v = 0; v < OV; v++) st(H + s * ldh + o + v * VL, a[s][v]);                    \
    }
/* the weights are read by the dot products straight from memory (L1 after the first stream): only the
 * accumulators and one broadcast need registers */
#if NREG >= 32
#define OV8 3   /* 24 accumulators + 1 broadcast (+ temporaries where dot2 is written out) of 32 */
#define OV4 6
#define OV1 8
#else
#define OV8 1   /*  8 + 1 of 16 */
#define OV4 2
#define OV1 8
#endif
#define PTILE(SB, OV) PTILE_BODY(SB, OV)
PTILE(8, OV8)
PTILE(4, OV4)
PTILE(1, OV1)
#if OV8 > 1
PTILE(8, 1)
#endif
PTILE(4, 1)
PTILE(1, 1)
#define TILE_NAME(SB, OV) tile_##SB##x##OV
#define CALL(SB, OV) TILE_NAME(SB, OV)

static void gemm_acc(float *H, int ldh, const float *X, int ldx, const wt *W16, int B, int n_in, int n_out,
                     uint32_t *xs)
{
    const int n_pairs = (n_in + 1) / 2;
    const uint32_t *W = (const uint32_t *)W16;
    for (int b = 0; b < B; b++) {  /* the inputs in bf16 pairs */
        const float *x = X + (int64_t)b * ldx;
        uint32_t *q = xs + (int64_t)b * n_pairs;
        for (int p = 0; p < n_in / 2; p++) q[p] = bf16_bits(x[2 * p]) | bf16_bits(x[2 * p + 1]) << 16;
        if (n_in % 2) q[n_pairs - 1] = bf16_bits(x[n_in - 1]);
    }
#define ROWS(SB, OV)                                                                                      \
    for (; b + SB <= B; b += SB) {                                                                        \
        float *h = H + (int64_t)b * ldh;                                                                  \
        const uint32_t *x = xs + (int64_t)b * n_pairs;                                                    \
        int o = 0;                                                                                        \
        for (; o + OV * VL <= n_out; o += OV * VL) CALL(SB, OV)(h, ldh, x, n_pairs, W, n_pairs, n_out, o);\
        for (; o + VL <= n_out; o += VL) CALL(SB, 1)(h, ldh, x, n_pairs, W, n_pairs, n_out, o);           \
        for (; o < n_out; o++)                                                                            \
            for (int s = 0; s < SB; s++) {                                                                \
                float acc = h[s * ldh + o];                                                               \
                for (int p = 0; p < n_pairs; p++) {                                                       \
                    const uint32_t w = W[(int64_t)p * n_out + o], xp = x[s * n_pairs + p];                \
                    acc += bits_f(w << 16) * bits_f(xp << 16) + bits_f(w & 0xffff0000u) * bits_f(xp & 0xffff0000u); \
                }                                                                                         \
                h[s * ldh + o] = acc;                                                                     \
            }                                                                                             \
    }
    int b = 0;
    ROWS(8, OV8)
    ROWS(4, OV4)
    ROWS(1, OV1)
#undef ROWS
}

#endif /* WG_WEIGHT_BF16 */

/* dst[o] = src[o] (widened to float), for o < n */
static void widen_row(float *dst, const wt *src, int n)
{
    int o = 0;
    for (; o + VL <= n; o += VL) st(dst + o, ldw(src + o));
    for (; o < n; o++) dst[o] = w2f(src[o]);
}

/* dst[o] += s * a[o] + c * b[o], for o < n */
static void add_sin_cos_rows(float *dst, float s, const wt *a, float c, const wt *b, int n)
{
    const vf vs = bc(s), vc = bc(c);
    int o = 0;
    for (; o + VL <= n; o += VL) st(dst + o, ld(dst + o) + (vs * ldw(a + o) + vc * ldw(b + o)));
    for (; o < n; o++) dst[o] += s * w2f(a[o]) + c * w2f(b[o]);
}

/* Eigen's rational approximation of tanh for float32 (max error about 1e-7 absolute). */
static inline float fast_tanh(float x)
{
    x = fminf(fmaxf(x, -7.90531110763549805f), 7.90531110763549805f);
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

/* z = tanh(a) * sigmoid(b), for G gates. A function of its own, so that `restrict` holds for GCC: written
 * inline in the layer loop, GCC 12 vectorized it behind a run-time overlap check that sent every call to
 * the scalar copy (a fifth of the time at batch 1). */
static void gate(float *restrict z, const float *restrict a, const float *restrict b, int G)
{
    for (int g = 0; g < G; g++) z[g] = fast_tanh(a[g]) * (0.5f + 0.5f * fast_tanh(0.5f * b[g]));
}

static inline double next_uniform(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return (double)((x * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

#define TWO_PI 6.283185307179586

/* A model's sizes and weights. fast.py's WgWeights mirrors it: change both together. The weights (wt)
 * are float, or half in the WG_WEIGHT_F16 build, or bf16 in the WG_WEIGHT_BF16 build (the matrices in
 * input pairs, see gemm_acc there); the biases are float in all. */
typedef struct {
    int32_t L, K, R, G, S, H, n_out, n_keys, total_hist;  /* layers, taps, channels, keys, buffer rows */
    int32_t wformat;                            /* the weights' format: 0 float, 1 fp16, 2 bf16 (WG_WFORMAT) */
    int32_t n_partials;                         /* P: partials summed in each key's excitation */
    const wt *emb;                              /* (n_classes, R) */
    const wt *w_dil;                            /* (L, K, R, 2G): tap j reads the input (K - 1 - j) * dil back */
    const int64_t *dil, *hist_off, *hist_len;   /* (L,) dilation; each layer's rows of the buffer */
    const wt *w_exc;                            /* (2 * n_keys, L, 2G): sine rows, then cosine rows */
    const wt *w_res; const float *b_res;        /* (L, G, R), (L, R) */
    const wt *w_skip; const float *b_skip;      /* (L, G, S), (S,): the layers' skip biases summed */
    const wt *w1; const float *b1;              /* head: (S, H), (H,) */
    const wt *w2; const float *b2;              /* (H, n_out), (n_out,) */
    const double *key_hz;                       /* (n_keys,) fundamental of each key */
    const double *partial_amp;                  /* (n_keys, P) amplitude of each key's partials, 0 above the band */
} wg_weights;

/* One call: samples t0 .. t0 + n - 1 of one tick for B streams. fast.py's WgBlock mirrors it. */
typedef struct {
    int32_t B, n, n_exc;
    int64_t t0;
    double sr;                                  /* sample rate, Hz */
    float temperature, min_p;
    const float *cond_row;                      /* (L, 2G): the tick's conditioning plus every bias */
    const int64_t *exc_keys, *exc_onsets;       /* (n_exc,) sounding keys and their onset samples */
    int64_t *codes_in;                          /* (B,) the previous sample of each stream; updated */
    float *buf;                                 /* (B, total_hist, R) the layers' circular buffers */
    uint64_t *rng;                              /* (B,) xorshift64* states */
    int64_t *out_codes;                         /* (B, n) */
    float *out_logits;                          /* (B, n, n_out), or NULL */
    const int64_t *teacher;                     /* (B, n) codes fed instead of the sampled ones, or NULL */
} wg_block;

#define WG_WEIGHTS_FIELDS(X) X(L) X(K) X(R) X(G) X(S) X(H) X(n_out) X(n_keys) X(total_hist) X(wformat) X(n_partials) \
    X(emb) X(w_dil) X(dil) X(hist_off) X(hist_len) X(w_exc) X(w_res) X(b_res) X(w_skip) X(b_skip) X(w1) X(b1) X(w2) \
    X(b2) X(key_hz) X(partial_amp)
#define WG_BLOCK_FIELDS(X) X(B) X(n) X(n_exc) X(t0) X(sr) X(temperature) X(min_p) X(cond_row) X(exc_keys) \
    X(exc_onsets) X(codes_in) X(buf) X(rng) X(out_codes) X(out_logits) X(teacher)

/* The layout of wg_weights (which = 0) or wg_block (1): its size, then the offset of each field in
 * order, written to out (up to cap values). Returns how many values there are, or -1 for another which. */
int wg_layout(int which, int64_t *out, int cap)
{
    int64_t v[32];
    int k = 0;
#define OFF_W(f) v[k++] = (int64_t)offsetof(wg_weights, f);
#define OFF_B(f) v[k++] = (int64_t)offsetof(wg_block, f);
    if (which == 0) { v[k++] = (int64_t)sizeof(wg_weights); WG_WEIGHTS_FIELDS(OFF_W) }
    else if (which == 1) { v[k++] = (int64_t)sizeof(wg_block); WG_BLOCK_FIELDS(OFF_B) }
    else return -1;
    for (int i = 0; i < k && i < cap; i++) out[i] = v[i];
    return k;
}

/* What this build was compiled for: out[0] floats per vector, out[1] vector registers (for `wavegen
 * doctor`: an AVX-512 build says 16 and 32, AVX2 8 and 16, SSE 4 and 16, NEON 4 and 32), out[2] the
 * weights' format (0 float, 1 fp16, 2 bf16), out[3] 1 where the hardware has the format's instructions
 * (fp16: F16C or NEON widen it; bf16: AVX512_BF16 or ARM's BF16 take dot products of it; float: 1). */
void wg_target(int32_t *out)
{
    out[0] = VL;
    out[1] = NREG;
    out[2] = WG_WFORMAT;
#if defined(WG_WEIGHT_F16) && !(defined(__F16C__) || defined(__AVX512F__) || defined(__aarch64__))
    out[3] = 0;
#elif defined(WG_WEIGHT_BF16)
    out[3] = DOT2_NATIVE;
#else
    out[3] = 1;
#endif
}

/* Returns 0, -1 if scratch memory cannot be allocated, or -2 if the weights are not laid out in this
 * build's format (model->wformat). */
int wg_step_block(const wg_weights *model, const wg_block *blk)
{
    if (model->wformat != WG_WFORMAT) return -2;
    const int L = model->L, K = model->K, R = model->R, G = model->G, S = model->S, H = model->H;
    const int n_out = model->n_out, n_keys = model->n_keys, total_hist = model->total_hist;
    const int B = blk->B, n = blk->n, n_exc = blk->n_exc;
    const int64_t t0 = blk->t0;
    const double sr = blk->sr;
    const float temperature = blk->temperature, min_p = blk->min_p;
    const wt *emb = model->emb, *w_dil = model->w_dil, *w_exc = model->w_exc;
    const wt *w_res = model->w_res, *w_skip = model->w_skip, *w1 = model->w1, *w2 = model->w2;
    const float *b_res = model->b_res, *b_skip = model->b_skip, *b1 = model->b1, *b2 = model->b2;
    const int64_t *dil = model->dil, *hist_off = model->hist_off, *hist_len = model->hist_len;
    const double *key_hz = model->key_hz, *partial_amp = model->partial_amp;
    const int P = model->n_partials;
    const float *cond_row = blk->cond_row;
    const int64_t *exc_keys = blk->exc_keys, *exc_onsets = blk->exc_onsets, *teacher = blk->teacher;
    int64_t *codes_in = blk->codes_in, *out_codes = blk->out_codes;
    float *buf = blk->buf, *out_logits = blk->out_logits;
    uint64_t *rng = blk->rng;
    const int G2 = 2 * G;
    int wide = R;  /* the widest row any scratch buffer holds */
    if (G2 > wide) wide = G2;
    if (S > wide) wide = S;
    if (H > wide) wide = H;
    if (n_out > wide) wide = n_out;
    float *scratch = malloc(sizeof(float) * ((size_t)9 * B * wide + (size_t)B + (size_t)L * G2));
    if (!scratch) return -1;
    float *x = scratch, *hh = x + B * wide, *z = hh + B * wide, *skip = z + B * wide;
    float *h1 = skip + B * wide, *logits = h1 + B * wide, *relu = logits + B * wide, *past = relu + B * wide;
    float *exc = past + B * wide;
    uint32_t *xs = (uint32_t *)(exc + L * G2);  /* B * (wide / 2 + 1) words: gemm_acc's inputs in pairs */
    for (int i = 0; i < n; i++) {
        const int64_t t = t0 + i;
        /* this sample's conditioning of every layer: the tick's row plus the sounding keys' excitation */
        memcpy(exc, cond_row, sizeof(float) * L * G2);
        for (int j = 0; j < n_exc; j++) {
            const int64_t k = exc_keys[j];
            const double phase = TWO_PI * key_hz[k] * (double)(t - exc_onsets[j]) / sr;
            /* the sum of its partials, sin(p phase) and cos(p phase) by angle addition from the fundamental's
             * (in conditioning.partial_sum's order); one partial of amplitude 1 is the fundamental itself */
            const double s1 = sin(phase), c1 = cos(phase);
            double sp = s1, cp = c1, ss = 0.0, cc = 0.0;
            for (int q = 0; q < P; q++) {
                const double a = partial_amp[k * P + q];
                ss += a * sp;
                cc += a * cp;
                const double sn = sp * c1 + cp * s1;
                cp = cp * c1 - sp * s1;
                sp = sn;
            }
            const float s = (float)ss, c = (float)cc;
            add_sin_cos_rows(exc, s, w_exc + k * (int64_t)L * G2, c, w_exc + (n_keys + k) * (int64_t)L * G2, L * G2);
        }
        for (int b = 0; b < B; b++) {
            widen_row(x + b * R, emb + codes_in[b] * R, R);
            memcpy(skip + b * S, b_skip, sizeof(float) * S);
        }
        for (int l = 0; l < L; l++) {
            const int64_t d = dil[l], off = hist_off[l], ln = hist_len[l];
            for (int b = 0; b < B; b++) memcpy(hh + b * G2, exc + l * G2, sizeof(float) * G2);
            for (int j = 0; j < K - 1; j++) {  /* tap j reads the input (K - 1 - j) * d samples back */
                int64_t pos = off + ((t - (K - 1 - j) * d) % ln + ln) % ln;
                for (int b = 0; b < B; b++)
                    memcpy(past + b * R, buf + ((int64_t)b * total_hist + pos) * R, sizeof(float) * R);
                gemm_acc(hh, G2, past, R, w_dil + ((int64_t)l * K + j) * R * G2, B, R, G2, xs);
            }
            gemm_acc(hh, G2, x, R, w_dil + ((int64_t)l * K + K - 1) * R * G2, B, R, G2, xs);
            if (K > 1) {
                int64_t pos = off + t % ln;
                for (int b = 0; b < B; b++)
                    memcpy(buf + ((int64_t)b * total_hist + pos) * R, x + b * R, sizeof(float) * R);
            }
            for (int b = 0; b < B; b++) gate(z + b * G, hh + b * G2, hh + b * G2 + G, G);
            if (l < L - 1) {
                for (int b = 0; b < B; b++)
                    for (int r = 0; r < R; r++) x[b * R + r] += b_res[l * R + r];
                gemm_acc(x, R, z, G, w_res + (int64_t)l * G * R, B, G, R, xs);
            }
            gemm_acc(skip, S, z, G, w_skip + (int64_t)l * G * S, B, G, S, xs);
        }
        /* head: ReLU, 1x1, ReLU, 1x1 */
        for (int b = 0; b < B; b++) {
            for (int s = 0; s < S; s++) relu[b * S + s] = fmaxf(skip[b * S + s], 0.0f);
            memcpy(h1 + b * H, b1, sizeof(float) * H);
        }
        gemm_acc(h1, H, relu, S, w1, B, S, H, xs);
        for (int b = 0; b < B; b++) {
            for (int q = 0; q < H; q++) relu[b * H + q] = fmaxf(h1[b * H + q], 0.0f);
            memcpy(logits + b * n_out, b2, sizeof(float) * n_out);
        }
        gemm_acc(logits, n_out, relu, H, w2, B, H, n_out, xs);
        for (int b = 0; b < B; b++) {
            const float *lg = logits + b * n_out;
            if (out_logits) memcpy(out_logits + ((int64_t)b * n + i) * n_out, lg, sizeof(float) * n_out);
            int64_t nxt;
            if (teacher) {
                nxt = teacher[(int64_t)b * n + i];
            } else if (temperature <= 0.0f) {
                nxt = 0;
                for (int o = 1; o < n_out; o++) if (lg[o] > lg[nxt]) nxt = o;
            } else {
                float m = lg[0];
                for (int o = 1; o < n_out; o++) m = fmaxf(m, lg[o]);
                float *p = relu + b * wide;  /* the head is done with this scratch */
                const float inv_t = 1.0f / temperature;
                for (int o = 0; o < n_out; o++) {  /* vectorizes */
                    const float v = expf((lg[o] - m) * inv_t);  /* the most likely class has v = 1 */
                    p[o] = v < min_p ? 0.0f : v;  /* min-p: drop the unlikely tail */
                }
                double total = 0.0;
                for (int o = 0; o < n_out; o++) total += p[o];
                double u = next_uniform(&rng[b]) * total, acc = 0.0;
                nxt = n_out - 1;
                for (int o = 0; o < n_out; o++) { acc += p[o]; if (acc > u) { nxt = o; break; } }
            }
            out_codes[(int64_t)b * n + i] = nxt;
            codes_in[b] = nxt;
        }
    }
    free(scratch);
    return 0;
}
