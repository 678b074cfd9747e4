/* The WaveNet's cached step for CPUs, in C: the fast path of wavegen/synth/fast.py. It computes what
 * WaveNet.step (each ResidualLayer.step, then the head) computes, for a block of samples of one tick
 * and a batch of streams; fast.py's numba kernel is the same computation, for machines without a compiler.
 *
 * Built at install time (setup.py) with -O3 -march=native -ffast-math, loaded with ctypes; without a
 * compiler, wavegen uses the numba kernel instead. Matrix products are written with GCC vector types:
 * 16 floats per vector (one AVX-512 register, or two AVX2 ones), batches in blocks of 4 streams so a
 * loaded weight vector feeds 4 multiply-adds, and accumulators stay in registers across the inputs.
 *
 * Weights are input-major: w[i * n_out + o] multiplies input i into output o. They come in one
 * structure (wg_weights, built once per model) and each call's state and inputs in another (wg_block);
 * fast.py mirrors both with ctypes.Structure, field for field, and checks the mirrors against
 * wg_layout() when it loads the library.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64), aligned(4)));

static inline v16 ld(const float *p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void st(float *p, v16 v) { memcpy(p, &v, sizeof v); }
static inline v16 bc(float x) { return (v16){0} + x; }

/* H[b, o] += sum_i X[b, i] * W[i, o] for b < B, o < n_out; H rows ldh apart, X rows ldx apart. */
static void gemm_acc(float *H, int ldh, const float *X, int ldx, const float *W, int B, int n_in, int n_out)
{
    int b = 0;
    for (; b + 8 <= B; b += 8) {  /* 8 streams x 32 outputs: 16 accumulators, each weight load used 8 times */
        int o = 0;
        for (; o + 32 <= n_out; o += 32) {
            v16 a[8][2];
            for (int s = 0; s < 8; s++) {
                a[s][0] = ld(H + (b + s) * ldh + o);
                a[s][1] = ld(H + (b + s) * ldh + o + 16);
            }
            for (int i = 0; i < n_in; i++) {
                const float *w = W + (int64_t)i * n_out + o;
                v16 w0 = ld(w), w1 = ld(w + 16);
                for (int s = 0; s < 8; s++) {
                    v16 xb = bc(X[(b + s) * ldx + i]);
                    a[s][0] += w0 * xb;
                    a[s][1] += w1 * xb;
                }
            }
            for (int s = 0; s < 8; s++) {
                st(H + (b + s) * ldh + o, a[s][0]);
                st(H + (b + s) * ldh + o + 16, a[s][1]);
            }
        }
        for (; o < n_out; o++) {
            for (int s = 0; s < 8; s++) {
                float acc = H[(b + s) * ldh + o];
                for (int i = 0; i < n_in; i++) acc += W[(int64_t)i * n_out + o] * X[(b + s) * ldx + i];
                H[(b + s) * ldh + o] = acc;
            }
        }
    }
    for (; b + 4 <= B; b += 4) {
        float *h0 = H + (b + 0) * ldh, *h1 = H + (b + 1) * ldh, *h2 = H + (b + 2) * ldh, *h3 = H + (b + 3) * ldh;
        const float *x0 = X + (b + 0) * ldx, *x1 = X + (b + 1) * ldx, *x2 = X + (b + 2) * ldx, *x3 = X + (b + 3) * ldx;
        int o = 0;
        for (; o + 32 <= n_out; o += 32) {
            v16 a00 = ld(h0 + o), a01 = ld(h0 + o + 16), a10 = ld(h1 + o), a11 = ld(h1 + o + 16);
            v16 a20 = ld(h2 + o), a21 = ld(h2 + o + 16), a30 = ld(h3 + o), a31 = ld(h3 + o + 16);
            for (int i = 0; i < n_in; i++) {
                const float *w = W + (int64_t)i * n_out + o;
                v16 w0 = ld(w), w1 = ld(w + 16);
                v16 b0 = bc(x0[i]), b1 = bc(x1[i]), b2 = bc(x2[i]), b3 = bc(x3[i]);
                a00 += w0 * b0; a01 += w1 * b0; a10 += w0 * b1; a11 += w1 * b1;
                a20 += w0 * b2; a21 += w1 * b2; a30 += w0 * b3; a31 += w1 * b3;
            }
            st(h0 + o, a00); st(h0 + o + 16, a01); st(h1 + o, a10); st(h1 + o + 16, a11);
            st(h2 + o, a20); st(h2 + o + 16, a21); st(h3 + o, a30); st(h3 + o + 16, a31);
        }
        for (; o < n_out; o++) {
            float s0 = h0[o], s1 = h1[o], s2 = h2[o], s3 = h3[o];
            for (int i = 0; i < n_in; i++) {
                float w = W[(int64_t)i * n_out + o];
                s0 += w * x0[i]; s1 += w * x1[i]; s2 += w * x2[i]; s3 += w * x3[i];
            }
            h0[o] = s0; h1[o] = s1; h2[o] = s2; h3[o] = s3;
        }
    }
    for (; b < B; b++) {
        float *h = H + b * ldh;
        const float *x = X + b * ldx;
        int o = 0;
        for (; o + 128 <= n_out; o += 128) {
            v16 a[8];
            for (int k = 0; k < 8; k++) a[k] = ld(h + o + 16 * k);
            for (int i = 0; i < n_in; i++) {
                const float *w = W + (int64_t)i * n_out + o;
                v16 xb = bc(x[i]);
                for (int k = 0; k < 8; k++) a[k] += ld(w + 16 * k) * xb;
            }
            for (int k = 0; k < 8; k++) st(h + o + 16 * k, a[k]);
        }
        for (; o + 32 <= n_out; o += 32) {
            v16 a0 = ld(h + o), a1 = ld(h + o + 16);
            for (int i = 0; i < n_in; i++) {
                const float *w = W + (int64_t)i * n_out + o;
                v16 xb = bc(x[i]);
                a0 += ld(w) * xb; a1 += ld(w + 16) * xb;
            }
            st(h + o, a0); st(h + o + 16, a1);
        }
        for (; o < n_out; o++) {
            float s = h[o];
            for (int i = 0; i < n_in; i++) s += W[(int64_t)i * n_out + o] * x[i];
            h[o] = s;
        }
    }
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

static inline double next_uniform(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return (double)((x * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

#define TWO_PI 6.283185307179586

/* A model's sizes and weights. fast.py's WgWeights mirrors it: change both together. */
typedef struct {
    int32_t L, K, R, G, S, H, n_out, n_keys, total_hist;  /* layers, taps, channels, keys, buffer rows */
    const float *emb;                           /* (n_classes, R) */
    const float *w_dil;                         /* (L, K, R, 2G): tap j reads the input (K - 1 - j) * dil back */
    const int64_t *dil, *hist_off, *hist_len;   /* (L,) dilation; each layer's rows of the buffer */
    const float *w_exc;                         /* (2 * n_keys, L, 2G): sine rows, then cosine rows */
    const float *w_res, *b_res;                 /* (L, G, R), (L, R) */
    const float *w_skip, *b_skip;               /* (L, G, S), (S,): the layers' skip biases summed */
    const float *w1, *b1, *w2, *b2;             /* head: (S, H), (H,), (H, n_out), (n_out,) */
    const double *key_hz;                       /* (n_keys,) fundamental of each key */
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

#define WG_WEIGHTS_FIELDS(X) X(L) X(K) X(R) X(G) X(S) X(H) X(n_out) X(n_keys) X(total_hist) X(emb) X(w_dil) \
    X(dil) X(hist_off) X(hist_len) X(w_exc) X(w_res) X(b_res) X(w_skip) X(b_skip) X(w1) X(b1) X(w2) X(b2) X(key_hz)
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

/* Returns 0, or -1 if scratch memory cannot be allocated. */
int wg_step_block(const wg_weights *model, const wg_block *blk)
{
    const int L = model->L, K = model->K, R = model->R, G = model->G, S = model->S, H = model->H;
    const int n_out = model->n_out, n_keys = model->n_keys, total_hist = model->total_hist;
    const int B = blk->B, n = blk->n, n_exc = blk->n_exc;
    const int64_t t0 = blk->t0;
    const double sr = blk->sr;
    const float temperature = blk->temperature, min_p = blk->min_p;
    const float *emb = model->emb, *w_dil = model->w_dil, *w_exc = model->w_exc;
    const float *w_res = model->w_res, *b_res = model->b_res, *w_skip = model->w_skip, *b_skip = model->b_skip;
    const float *w1 = model->w1, *b1 = model->b1, *w2 = model->w2, *b2 = model->b2;
    const int64_t *dil = model->dil, *hist_off = model->hist_off, *hist_len = model->hist_len;
    const double *key_hz = model->key_hz;
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
    float *scratch = malloc(sizeof(float) * ((size_t)8 * B * wide + (size_t)L * G2));
    if (!scratch) return -1;
    float *x = scratch, *hh = x + B * wide, *z = hh + B * wide, *skip = z + B * wide;
    float *h1 = skip + B * wide, *logits = h1 + B * wide, *relu = logits + B * wide, *past = relu + B * wide;
    float *exc = past + B * wide;
    for (int i = 0; i < n; i++) {
        const int64_t t = t0 + i;
        /* this sample's conditioning of every layer: the tick's row plus the sounding keys' excitation */
        memcpy(exc, cond_row, sizeof(float) * L * G2);
        for (int j = 0; j < n_exc; j++) {
            const int64_t k = exc_keys[j];
            const double phase = TWO_PI * key_hz[k] * (double)(t - exc_onsets[j]) / sr;
            const float s = (float)sin(phase), c = (float)cos(phase);
            const float *ws = w_exc + k * (int64_t)L * G2, *wc = w_exc + (n_keys + k) * (int64_t)L * G2;
            for (int o = 0; o < L * G2; o++) exc[o] += s * ws[o] + c * wc[o];
        }
        for (int b = 0; b < B; b++) {
            memcpy(x + b * R, emb + codes_in[b] * R, sizeof(float) * R);
            memcpy(skip + b * S, b_skip, sizeof(float) * S);
        }
        for (int l = 0; l < L; l++) {
            const int64_t d = dil[l], off = hist_off[l], ln = hist_len[l];
            for (int b = 0; b < B; b++) memcpy(hh + b * G2, exc + l * G2, sizeof(float) * G2);
            for (int j = 0; j < K - 1; j++) {  /* tap j reads the input (K - 1 - j) * d samples back */
                int64_t pos = off + ((t - (K - 1 - j) * d) % ln + ln) % ln;
                for (int b = 0; b < B; b++)
                    memcpy(past + b * R, buf + ((int64_t)b * total_hist + pos) * R, sizeof(float) * R);
                gemm_acc(hh, G2, past, R, w_dil + ((int64_t)l * K + j) * R * G2, B, R, G2);
            }
            gemm_acc(hh, G2, x, R, w_dil + ((int64_t)l * K + K - 1) * R * G2, B, R, G2);
            if (K > 1) {
                int64_t pos = off + t % ln;
                for (int b = 0; b < B; b++)
                    memcpy(buf + ((int64_t)b * total_hist + pos) * R, x + b * R, sizeof(float) * R);
            }
            for (int b = 0; b < B; b++) {
                const float *restrict hb = hh + b * G2;
                float *restrict zb = z + b * G;
                for (int g = 0; g < G; g++) zb[g] = fast_tanh(hb[g]) * (0.5f + 0.5f * fast_tanh(0.5f * hb[G + g]));
            }
            if (l < L - 1) {
                for (int b = 0; b < B; b++)
                    for (int r = 0; r < R; r++) x[b * R + r] += b_res[l * R + r];
                gemm_acc(x, R, z, G, w_res + (int64_t)l * G * R, B, G, R);
            }
            gemm_acc(skip, S, z, G, w_skip + (int64_t)l * G * S, B, G, S);
        }
        /* head: ReLU, 1x1, ReLU, 1x1 */
        for (int b = 0; b < B; b++) {
            for (int s = 0; s < S; s++) relu[b * S + s] = fmaxf(skip[b * S + s], 0.0f);
            memcpy(h1 + b * H, b1, sizeof(float) * H);
        }
        gemm_acc(h1, H, relu, S, w1, B, S, H);
        for (int b = 0; b < B; b++) {
            for (int q = 0; q < H; q++) relu[b * H + q] = fmaxf(h1[b * H + q], 0.0f);
            memcpy(logits + b * n_out, b2, sizeof(float) * n_out);
        }
        gemm_acc(logits, n_out, relu, H, w2, B, H, n_out);
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
