// The tensor-core attention kernels of falcon_cuda.cu, run on the CPU: no GPU and no nvcc needed.
//
// The Makefile copies the kernels' source out of falcon_cuda.cu into build/fa_kernels.inc, without the one
// function that is inline PTX (mma_bf16); this file supplies what CUDA would: each CUDA thread of a block is a
// host thread, __syncthreads a barrier, a shuffle or an mma.sync an exchange through a per-warp buffer between
// two warp barriers, and mma_bf16 is computed from the fragment layout that PTX documents for m16n8k16 (and that
// the comment above the kernels states). The kernels run on random bf16 inputs and are compared with attention
// computed in double precision from the definition: out and lse of the forward, dq, dk and dv of the backward,
// for causal and tree masks, grouped and multi-query heads, head sizes 32 and 64, partial tiles.
#include <barrier>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

// ---------------------------------------------------------------- CUDA, as far as the kernels use it
struct dim3 { unsigned x = 1, y = 1, z = 1; };
static thread_local dim3 threadIdx, blockIdx;
static dim3 gridDim, blockDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
alignas(16) unsigned char fm_smem[1 << 18];  // dynamic shared memory of the backward kernel
float sm[1 << 16];                           // and of the CUDA-core kernels (compiled, not run here)
struct uint4 { uint32_t x, y, z, w; };
static uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
struct float2 { float x, y; };
static float2 make_float2(float a, float b) { return {a, b}; }
struct __nv_bfloat16 {  // round to nearest even, as __float2bfloat16_rn
    uint16_t u;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) { uint32_t x; memcpy(&x, &f, 4); x += 0x7fff + ((x >> 16) & 1); u = (uint16_t)(x >> 16); }
    operator float() const { uint32_t x = (uint32_t)u << 16; float f; memcpy(&f, &x, 4); return f; }
};
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
static __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
static float rsqrtf(float x) { return 1.0f / sqrtf(x); }
#define __expf expf
typedef __nv_bfloat16 floatX;
static float ld(floatX x) { return (float)x; }
static floatX st(float x) { return (floatX)x; }

static std::unique_ptr<std::barrier<>> block_bar, warp_bar[32];
static void __syncthreads() { block_bar->arrive_and_wait(); }
struct WarpExchange { float f[32]; uint32_t a[32][4], b[32][2]; };
static WarpExchange wx[32];
static float shfl(float v, int from_xor, int from) {
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    wx[w].f[l] = v;
    warp_bar[w]->arrive_and_wait();
    float r = wx[w].f[from < 0 ? l ^ from_xor : from];
    warp_bar[w]->arrive_and_wait();
    return r;
}
static float __shfl_xor_sync(unsigned, float v, int m) { return shfl(v, m, -1); }
static float __shfl_sync(unsigned, float v, int src) { return shfl(v, 0, src); }
static float warp_sum(float x) { for (int m = 16; m; m /= 2) x += __shfl_xor_sync(~0u, x, m); return x; }
static float warp_max(float x) { for (int m = 16; m; m /= 2) x = fmaxf(x, __shfl_xor_sync(~0u, x, m)); return x; }
static std::mutex atomic_lock;
static float atomicAdd(float *p, float v) { std::lock_guard<std::mutex> g(atomic_lock); float o = *p; *p += v; return o; }

static float bf16_lo(uint32_t r) { __nv_bfloat16 b; b.u = (uint16_t)(r & 0xffff); return b; }
static float bf16_hi(uint32_t r) { __nv_bfloat16 b; b.u = (uint16_t)(r >> 16); return b; }
// d += a b for the warp's 16 x 16 A and 16 x 8 B, gathered from all 32 lanes' fragments
static void mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    memcpy(wx[w].a[l], a, sizeof wx[w].a[l]);
    wx[w].b[l][0] = b0;
    wx[w].b[l][1] = b1;
    warp_bar[w]->arrive_and_wait();
    float A[16][16], B[16][8];
    for (int ln = 0; ln < 32; ln++) {
        int fr = ln / 4, fc = 2 * (ln % 4);
        for (int r = 0; r < 4; r++) {
            int row = fr + 8 * (r & 1), col = fc + 8 * (r >> 1);
            A[row][col] = bf16_lo(wx[w].a[ln][r]);
            A[row][col + 1] = bf16_hi(wx[w].a[ln][r]);
        }
        for (int r = 0; r < 2; r++) {
            B[fc + 8 * r][fr] = bf16_lo(wx[w].b[ln][r]);
            B[fc + 8 * r + 1][fr] = bf16_hi(wx[w].b[ln][r]);
        }
    }
    warp_bar[w]->arrive_and_wait();
    int fr = l / 4, fc = 2 * (l % 4);
    for (int e = 0; e < 4; e++) {
        float acc = 0.0f;
        for (int k = 0; k < 16; k++) acc += A[fr + 8 * (e >> 1)][k] * B[k][fc + (e & 1)];
        d[e] += acc;
    }
}

#include "fa_kernels.inc"

// One launch: `threads` host threads walk the grid's blocks together, one block at a time.
static void launch(dim3 grid, unsigned threads, const std::function<void()> &kernel) {
    gridDim = grid;
    blockDim.x = threads;
    block_bar = std::make_unique<std::barrier<>>(threads);
    for (unsigned w = 0; w < threads / 32; w++) warp_bar[w] = std::make_unique<std::barrier<>>(32);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; t++)
        pool.emplace_back([&, t] {
            threadIdx.x = t;
            for (unsigned z = 0; z < grid.z; z++)
                for (unsigned y = 0; y < grid.y; y++)
                    for (unsigned x = 0; x < grid.x; x++) {
                        blockIdx.x = x, blockIdx.y = y, blockIdx.z = z;
                        kernel();
                        block_bar->arrive_and_wait();  // the next block reuses the shared memory
                    }
        });
    for (auto &t : pool) t.join();
}

// ---------------------------------------------------------------- the checks
static int passed = 0, failed = 0;

static double max_rel(const std::vector<double> &ref, const std::vector<float> &got) {
    double md = 0.0, mr = 0.0;
    for (size_t i = 0; i < ref.size(); i++) {
        if (!std::isfinite(got[i])) return INFINITY;
        md = fmax(md, fabs(ref[i] - got[i]));
        mr = fmax(mr, fabs(ref[i]));
    }
    return md / mr;
}

// mask: 0 causal, 1 tree spans of random length, 2 documents of 24 tokens packed back to back (a query of a later
// document sees no key of the first tile: its online softmax starts from a tile with nothing visible)
template <int HS> static void check(size_t NH, size_t NKV, size_t B, size_t T, int mask, unsigned seed) {
    size_t qpk = NH / NKV, QKV = (NH + 2 * NKV) * HS, C = NH * HS, N = B * T, nq = N * NH * HS;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    std::vector<floatX> qkv(N * QKV), dout(N * C), out(N * C, st(NAN)), dqkv(N * QKV, st(NAN));
    for (auto &x : qkv) x = st(normal(rng));
    for (auto &x : dout) x = st(normal(rng));
    std::vector<int> span(N);  // key t2 is seen by queries t2 .. span[t2]
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++)
            span[b * T + t] = mask == 1 ? (int)(t + rng() % (T - t)) : mask == 2 ? (int)std::min(T, t / 24 * 24 + 24) - 1 : (int)T - 1;
    // attention from the definition, in double
    auto col = [&](size_t h, int which) { return (h / qpk * (qpk + 2) + (which ? qpk + which - 1 : h % qpk)) * HS; };
    auto x = [&](size_t b, size_t t, size_t c) { return (double)ld(qkv[(b * T + t) * QKV + c]); };
    std::vector<double> rout(N * C), rlse(B * NH * T), rd(N * QKV, 0.0), p(T), dp(T);
    double scale = 1.0 / sqrt((double)HS);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++)
            for (size_t t = 0; t < T; t++) {
                double mx = -INFINITY, l = 0.0, D = 0.0;
                for (size_t t2 = 0; t2 <= t; t2++) {
                    p[t2] = -INFINITY;
                    if ((int)t > span[b * T + t2]) continue;
                    double s = 0.0;
                    for (size_t d = 0; d < HS; d++) s += x(b, t, col(h, 0) + d) * x(b, t2, col(h, 1) + d);
                    p[t2] = s * scale;
                    mx = fmax(mx, p[t2]);
                }
                for (size_t t2 = 0; t2 <= t; t2++) l += p[t2] = exp(p[t2] - mx);
                rlse[(b * NH + h) * T + t] = mx + log(l);
                for (size_t t2 = 0; t2 <= t; t2++) {
                    p[t2] /= l;
                    dp[t2] = 0.0;
                    for (size_t d = 0; d < HS; d++) dp[t2] += ld(dout[(b * T + t) * C + h * HS + d]) * x(b, t2, col(h, 2) + d);
                    D += p[t2] * dp[t2];
                }
                for (size_t d = 0; d < HS; d++) {
                    double o = 0.0;
                    for (size_t t2 = 0; t2 <= t; t2++) o += p[t2] * x(b, t2, col(h, 2) + d);
                    rout[(b * T + t) * C + h * HS + d] = o;
                }
                for (size_t t2 = 0; t2 <= t; t2++) {
                    double ds = p[t2] * (dp[t2] - D) * scale;
                    for (size_t d = 0; d < HS; d++) {
                        rd[(b * T + t) * QKV + col(h, 0) + d] += ds * x(b, t2, col(h, 1) + d);
                        rd[(b * T + t2) * QKV + col(h, 1) + d] += ds * x(b, t, col(h, 0) + d);
                        rd[(b * T + t2) * QKV + col(h, 2) + d] += p[t2] * ld(dout[(b * T + t) * C + h * HS + d]);
                    }
                }
            }
    // the kernels, with falcon_cuda's launch shapes
    GpuSpec spec = {};
    spec.C = C, spec.NH = NH, spec.NKV = NKV, spec.HS = HS;
    FaShape s = fa_shape(&spec, T, mask ? span.data() : NULL);
    dim3 grid{(unsigned)((T + FM_TILE - 1) / FM_TILE), (unsigned)NH, (unsigned)B};
    std::vector<float> lse(B * NH * T, NAN), D(B * NH * T), scratch(3 * nq, NAN);
    launch(grid, 128, [&] { flash_attention_forward_mma<HS>(out.data(), lse.data(), qkv.data(), s); });
    for (size_t b = 0; b < B; b++)  // D = dout . out, as attention_backward_dot_kernel
        for (size_t h = 0; h < NH; h++)
            for (size_t t = 0; t < T; t++) {
                float d = 0.0f;
                for (size_t i = 0; i < HS; i++) d += ld(dout[(b * T + t) * C + h * HS + i]) * ld(out[(b * T + t) * C + h * HS + i]);
                D[(b * NH + h) * T + t] = d;
            }
    std::fill(scratch.begin(), scratch.begin() + nq, 0.0f);  // dq_acc is zeroed, the per-head parts are not
    float *dq = scratch.data(), *dk = dq + nq, *dv = dk + nq;
    launch(grid, 128, [&] { flash_attention_backward_mma<HS>(dq, dk, dv, dout.data(), lse.data(), D.data(), qkv.data(), s); });
    blockDim.x = 256;
    for (size_t i = 0; i < N * QKV; i++) {
        blockIdx.x = (unsigned)(i / 256), threadIdx.x = (unsigned)(i % 256);
        attention_backward_finish_kernel(dqkv.data(), dq, dk, dv, s, N);
    }
    std::vector<float> gout(out.begin(), out.end()), gd(dqkv.begin(), dqkv.end());
    double eo = max_rel(rout, gout), el = max_rel(rlse, lse), ed = max_rel(rd, gd);
    // bf16 inputs to every product: out and dqkv within a few 1e-3 of the double result; lse is summed in fp32
    bool ok = eo < 2e-2 && el < 1e-4 && ed < 2e-2;
    (ok ? passed : failed)++;
    printf("%s - HS %d NH %zu NKV %zu B %zu T %zu %s: out %.1e, lse %.1e, dqkv %.1e\n", ok ? "ok" : "FAIL", HS, NH,
           NKV, B, T, mask == 1 ? "tree" : mask == 2 ? "documents" : "causal", eo, el, ed);
}

int main() {
    for (int mask = 0; mask < 3; mask++) {
        check<32>(4, 1, 2, 37, mask, 1);    // multi-query, partial tile
        check<64>(8, 2, 1, 130, mask, 2);   // two groups, three key tiles, the last partial
        check<64>(6, 3, 1, 64, mask, 3);    // exactly one tile
        check<32>(3, 1, 1, 1, mask, 4);     // one token
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
