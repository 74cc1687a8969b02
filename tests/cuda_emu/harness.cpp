// The sanitizer harness of the CUDA emulator: runs the device code of shr_ops' CUDA kernels
// (csrc/cuda/*_device.cuh, as nvcc compiles it) with their launch shapes under csrc/emu/cudaemu.h,
// without torch, so that the whole process can be built with ASan+UBSan or TSan (.ci/cuda-emu).
// Every output is compared with a direct double-precision computation of the formula, and the
// emulator's own checks (barriers, shuffles, asserts, launch limits) are tested to fire.
// usage: harness [selftest|checks|encode|decode|blur|loss|all|deadlock]
//   exit status 0 iff every check passed; `deadlock` must end in the emulator's deadlock abort.
#include "emu/cudaemu.h"

// the kernels, as nvcc compiles them (only SHR_DYNAMIC_SMEM / SHR_LAUNCH / __shared__ / barriers
// are the emulator's)
#include "cuda/decode_device.cuh"
#include "cuda/encode_device.cuh"
#include "cuda/heatmap_loss_device.cuh"

#include <cstring>
#include <limits>
#include <random>
#include <string>

using shr_ops::cuda::kThreads;
static int g_failed = 0, g_passed = 0;
static const double kNaN = std::numeric_limits<double>::quiet_NaN();

template <typename T> const char* tname();
template <> const char* tname<float>() { return "f32"; }
template <> const char* tname<double>() { return "f64"; }

// |got - want| <= atol + rtol * |want|, NaN only where NaN is wanted; prints the first misses.
struct Cmp {
  std::string name;
  double atol, rtol;
  long n = 0, bad = 0;
  double worst = 0;
  void operator()(double got, double want, const char* what, long at) {
    ++n;
    const bool ok = (std::isnan(want) && std::isnan(got)) ||
                    (!std::isnan(got) && std::fabs(got - want) <= atol + rtol * std::fabs(want));
    if (!std::isnan(got) && !std::isnan(want)) worst = std::max(worst, std::fabs(got - want));
    if (!ok && bad++ < 5) std::printf("    %s: %s[%ld] = %.9g, want %.9g\n", name.c_str(), what, at, got, want);
  }
};

static void verdict(const Cmp& c, int emu_errors) {
  const bool ok = c.bad == 0 && emu_errors == 0;
  (ok ? g_passed : g_failed)++;
  std::printf("%s %-44s %8ld values, %ld off, max |err| %.2e%s\n", ok ? "PASS" : "FAIL", c.name.c_str(), c.n, c.bad,
              c.worst, emu_errors ? ", cudaemu errors" : "");
}

// ---------------------------------------------------------------- encode / encode_backward
template <typename out_t, typename acc_t, typename grad_t = acc_t>
void test_encode(int H, int W, const std::vector<double>& lmd, const std::vector<int>& visd, double sigma,
                 double radius, uint64_t seed) {
  const int M = static_cast<int>(lmd.size() / 2);
  const long HW = long(H) * W;
  std::vector<acc_t> lm(lmd.begin(), lmd.end());
  std::unique_ptr<bool[]> vis;
  if (!visd.empty()) {
    vis.reset(new bool[M]);
    for (int m = 0; m < M; ++m) vis[m] = visd[m] != 0;
  }
  const double r2 = radius > 0 ? radius * radius : -1.0;
  const auto shape = shr_ops::cuda::encode_launch_shape<acc_t>(M, H, W);  // as the launcher
  const size_t smem = shape.smem;
  if (shape.smem > shr_ops::cuda::kDefaultSharedBytes) {  // the launcher's opt-in (fit_shared_memory)
    cudaemu::set_max_dynamic_smem(reinterpret_cast<const void*>(shr_ops::cuda::encode_kernel<out_t, acc_t>), int(smem));
    cudaemu::set_max_dynamic_smem(reinterpret_cast<const void*>(shr_ops::cuda::encode_backward_kernel<grad_t, acc_t>),
                                  int(smem));
  }
  std::vector<out_t> out(M * HW, out_t(-7));
  int err = cudaemu::launch(shr_ops::cuda::encode_kernel<out_t, acc_t>, dim3(shape.blocks), dim3(shape.threads), smem, lm.data(),
                            vis.get(), out.data(), H, W, static_cast<acc_t>(-0.5 / (sigma * sigma)),
                            static_cast<acc_t>(r2));
  const double tol = sizeof(acc_t) == 4 ? 2e-6 : 1e-13;
  char nm[160];
  std::snprintf(nm, sizeof nm, "encode %s->%s %dx%d M=%d s=%g r=%g", tname<acc_t>(), tname<out_t>(), H, W, M, sigma,
                radius);
  Cmp c{nm, tol, tol};
  std::vector<double> ref(M * HW);
  for (int m = 0; m < M; ++m) {
    const double x = lm[2 * m], y = lm[2 * m + 1];
    const bool valid = std::isfinite(x) && std::isfinite(y) && (!vis || vis[m]);
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) {
        const double d2 = (j - x) * (j - x) + (i - y) * (i - y);
        double v = valid ? std::exp(-d2 / (2 * sigma * sigma)) : 0.0;
        if (v < std::numeric_limits<acc_t>::min()) v = 0.0;  // the forward flushes denormals
        if (valid && r2 >= 0 && d2 > r2) v = 0.0;
        ref[m * HW + long(i) * W + j] = v;
        c(out[m * HW + long(i) * W + j], v, "out", m * HW + long(i) * W + j);
      }
  }
  verdict(c, err);

  // backward: d/d(x, y) of sum_p g_p h_p = sum_p g_p h_p (j - x, i - y) / sigma^2 over the pixels kept
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<grad_t> g(M * HW);
  for (auto& v : g) v = static_cast<grad_t>(u(rng));
  std::vector<acc_t> gl(2 * M, acc_t(-7));
  err = cudaemu::launch(shr_ops::cuda::encode_backward_kernel<grad_t, acc_t>, dim3(M), dim3(kThreads), smem, g.data(),
                        lm.data(), vis.get(), gl.data(), H, W, static_cast<acc_t>(-0.5 / (sigma * sigma)),
                        static_cast<acc_t>(1.0 / (sigma * sigma)), static_cast<acc_t>(r2));
  std::snprintf(nm, sizeof nm, "encode_backward %s<-%s %dx%d M=%d r=%g", tname<acc_t>(), tname<grad_t>(), H, W, M,
                radius);
  Cmp cb{nm, 0, 0};
  for (int m = 0; m < M; ++m) {
    const double x = lm[2 * m], y = lm[2 * m + 1];
    const bool valid = std::isfinite(x) && std::isfinite(y) && (!vis || vis[m]);
    double sx = 0, sy = 0, ax = 0, ay = 0;
    for (int i = 0; i < H && valid; ++i)
      for (int j = 0; j < W; ++j) {
        const double gh = double(g[m * HW + long(i) * W + j]) * ref[m * HW + long(i) * W + j];
        sx += gh * (j - x), sy += gh * (i - y);
        ax += std::fabs(gh * (j - x)), ay += std::fabs(gh * (i - y));
      }
    const double k = 1 / (sigma * sigma), e = sizeof(acc_t) == 4 ? 1e-5 : 1e-12;
    cb.atol = e * k * ax + 1e-30;  // the error bound scales with the sum of |terms|
    cb(gl[2 * m], sx * k, "grad_lm.x", m);
    cb.atol = e * k * ay + 1e-30;
    cb(gl[2 * m + 1], sy * k, "grad_lm.y", m);
  }
  verdict(cb, err);
}

// ---------------------------------------------------------------- decode / decode_backward
template <typename in_t, typename acc_t>
void test_decode(int H, int W, const std::vector<double>& hmd, int r, double t, uint64_t seed, const char* what) {
  const long HW = long(H) * W;
  const int M = static_cast<int>(hmd.size() / HW);
  std::vector<in_t> hm(hmd.begin(), hmd.end());
  std::vector<acc_t> coords(2 * M, acc_t(-7)), scores(M, acc_t(-7));
  std::vector<int64_t> index(M, -7);
  const shr_ops::cuda::FitParams no_fit{0, 0.0, 0.0};  // the plain soft-argmax (blur=None)
  const shr_ops::cuda::HalfTaps<acc_t, shr_ops::cuda::kSmallTaps> no_taps{};
  int err = cudaemu::launch(shr_ops::cuda::decode_kernel<in_t, in_t, acc_t, shr_ops::cuda::kSmallTaps, false>, dim3(M),
                            dim3(kThreads), 0, hm.data(), static_cast<const in_t*>(nullptr), coords.data(),
                            scores.data(), index.data(), H, W, r, static_cast<acc_t>(t), no_fit, no_taps);
  char nm[160];
  std::snprintf(nm, sizeof nm, "decode %s %dx%d M=%d r=%d %s", tname<in_t>(), H, W, M, r, what);
  const double tol = sizeof(acc_t) == 4 ? 2e-5 : 1e-11;
  Cmp c{nm, tol, tol};
  struct Ref { long best; int mi, mj, i0, j0, i1, j1; double peak, sum, mx, my; };
  std::vector<Ref> refs(M);
  for (int m = 0; m < M; ++m) {
    const in_t* h = hm.data() + m * HW;
    long best = 0;  // torch.argmax: the first NaN, else the first maximum
    for (long p = 1; p < HW; ++p) {
      const bool nb = h[best] != h[best], np = h[p] != h[p];
      if (!nb && (np || h[p] > h[best])) best = p;
    }
    Ref R{best, int(best / W), int(best % W), 0, 0, 0, 0, double(h[best]), 0, 0, 0};
    R.i0 = std::max(0, R.mi - r), R.i1 = std::min(H - 1, R.mi + r);
    R.j0 = std::max(0, R.mj - r), R.j1 = std::min(W - 1, R.mj + r);
    double sx = 0, sy = 0;
    for (int i = R.i0; i <= R.i1; ++i)
      for (int j = R.j0; j <= R.j1; ++j) {
        const double w = std::exp(t * (double(h[long(i) * W + j]) - R.peak));  // softmax weight
        R.sum += w, sx += w * (j - R.mj), sy += w * (i - R.mi);
      }
    R.mx = sx / R.sum, R.my = sy / R.sum;
    refs[m] = R;
    c(double(index[m]), double(best), "index", m);
    c(scores[m], R.peak, "score", m);
    c(coords[2 * m], R.mj + R.mx, "x", m);
    c(coords[2 * m + 1], R.mi + R.my, "y", m);
  }
  verdict(c, err);

  // backward: d coords / d h_p = t prob_p ((j - mj) - mx, (i - mi) - my) in the window; d score / d h_best = 1
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<acc_t> gc(2 * M), gs(M);
  for (auto& v : gc) v = static_cast<acc_t>(u(rng));
  for (auto& v : gs) v = static_cast<acc_t>(u(rng));
  std::vector<in_t> gh(M * HW, in_t(-7));
  int bad_index = 0;
  err = cudaemu::launch(shr_ops::cuda::decode_backward_kernel<in_t, in_t, acc_t, shr_ops::cuda::kSmallTaps, false>, dim3(M),
                        dim3(kThreads), 0, gc.data(), gs.data(), hm.data(), static_cast<const in_t*>(nullptr),
                        index.data(), gh.data(), static_cast<acc_t*>(nullptr), &bad_index, H, W, r,
                        static_cast<acc_t>(t), no_fit, no_taps);
  err += bad_index;  // decode's own indices are valid
  std::snprintf(nm, sizeof nm, "decode_backward %s %dx%d M=%d r=%d %s", tname<in_t>(), H, W, M, r, what);
  Cmp cb{nm, tol, tol};
  for (int m = 0; m < M; ++m) {
    const Ref& R = refs[m];
    if (std::isnan(R.peak)) continue;  // NaN map: the gradient is NaN in the window, as the CPU kernel
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) {
        const long p = long(i) * W + j;
        double v = 0;
        if (i >= R.i0 && i <= R.i1 && j >= R.j0 && j <= R.j1) {
          const double prob = std::exp(t * (double(hm[m * HW + p]) - R.peak)) / R.sum;
          v = t * prob * (double(gc[2 * m]) * ((j - R.mj) - R.mx) + double(gc[2 * m + 1]) * ((i - R.mi) - R.my));
        }
        if (p == R.best) v += double(gs[m]);
        cb(gh[m * HW + p], v, "grad", m * HW + p);
      }
  }
  verdict(cb, err);
}

// ---------------------------------------------------------------- decode's Gaussian fit
// decode's pre-filter taps (gaussian_taps) as the kernels take them.
template <typename T>
shr_ops::cuda::HalfTaps<T, shr_ops::cuda::kSmallTaps> small_taps(double blur) {
  shr_ops::cuda::HalfTaps<T, shr_ops::cuda::kSmallTaps> k{};
  const int rf = static_cast<int>(std::ceil(3 * blur));
  k.r = rf;
  double s = 0;
  for (int d = -rf; d <= rf; ++d) s += std::exp(-double(d * d) / (2 * blur * blur));
  for (int e = 0; e <= rf; ++e) k.half[e] = static_cast<T>(std::exp(-double(e * e) / (2 * blur * blur)) / s);
  return k;
}

// x [n] (maps of H x W) filtered by k into y, as the two-pass path does (blur_pass_kernel twice).
template <typename T>
int prefilter(const std::vector<T>& x, std::vector<T>& y, int H, int W,
              const shr_ops::cuda::HalfTaps<T, shr_ops::cuda::kSmallTaps>& k) {
  namespace sc = shr_ops::cuda;
  const long n = static_cast<long>(x.size());
  const unsigned grid = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  std::vector<T> tmp(n);
  y.assign(n, T(0));
  int err = cudaemu::launch(sc::blur_pass_kernel<T, T, sc::kSmallTaps>, dim3(grid), dim3(kThreads), 0, x.data(),
                            tmp.data(), n, H, W, true, k);
  err += cudaemu::launch(sc::blur_pass_kernel<T, T, sc::kSmallTaps>, dim3(grid), dim3(kThreads), 0, tmp.data(),
                         y.data(), n, H, W, false, k);
  return err;
}

// Clean Gaussians (any width, centres up to the corner), pre-filtered for the two-pass kernels:
// decode (the estimate corrected by its bias on the fitted model) must return the centre to the
// maps' rounding, and the backward must write a finite gradient: through the fit inside its box
// only, and through the estimate inside the window only (its values are checked against the
// reference in the Python tests).
template <typename T>
void test_fit(int H, int W, const std::vector<double>& centres, double sigma, int window, double blur) {
  const long HW = long(H) * W;
  const int M = static_cast<int>(centres.size() / 2);
  std::vector<T> hm(M * HW);
  for (int m = 0; m < M; ++m)
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) {
        const double dx = j - centres[2 * m], dy = i - centres[2 * m + 1];
        hm[m * HW + long(i) * W + j] = static_cast<T>(std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)));
      }
  const int R = static_cast<int>(shr_ops::fit::box_radius(window, blur, H, W));
  const shr_ops::cuda::FitParams fp{R, blur, shr_ops::fit::stop_step(sizeof(T) == 8)};
  const auto k = small_taps<T>(blur);
  std::vector<T> F;
  int err = prefilter(hm, F, H, W, k);
  std::vector<T> coords(2 * M, T(-7)), scores(M, T(-7));
  std::vector<int64_t> index(M, -7);
  err += cudaemu::launch(shr_ops::cuda::decode_kernel<T, T, T, shr_ops::cuda::kSmallTaps, true>, dim3(M), dim3(kThreads), 0,
                         F.data(), hm.data(), coords.data(), scores.data(), index.data(), H, W, window / 2,
                         static_cast<T>(40.0), fp, k);
  char nm[160];
  std::snprintf(nm, sizeof nm, "decode fit %s %dx%d M=%d sigma=%g R=%d", tname<T>(), H, W, M, sigma, R);
  const double tol = sizeof(T) == 4 ? 3e-5 : 1e-9;
  Cmp c{nm, tol, 0};
  for (int m = 0; m < M; ++m) {
    c(coords[2 * m], centres[2 * m], "x", m);
    c(coords[2 * m + 1], centres[2 * m + 1], "y", m);
  }
  verdict(c, err);
  std::vector<T> gc(2 * M, T(0.7)), gs(M, T(-0.3)), out(M * HW, T(-7)), raw_out(M * HW, T(-7));
  int bad_index = 0;
  err = cudaemu::launch(shr_ops::cuda::decode_backward_kernel<T, T, T, shr_ops::cuda::kSmallTaps, true>, dim3(M),
                        dim3(kThreads), 0, gc.data(), gs.data(), F.data(), hm.data(), index.data(), out.data(),
                        raw_out.data(), &bad_index, H, W, window / 2, static_cast<T>(40.0), fp, k);
  err += bad_index;
  std::snprintf(nm, sizeof nm, "decode_backward fit %s %dx%d M=%d sigma=%g R=%d", tname<T>(), H, W, M, sigma, R);
  Cmp cb{nm, 0, 0};
  for (int m = 0; m < M; ++m) {
    const int mi = static_cast<int>(index[m] / W), mj = static_cast<int>(index[m] % W);
    double nonzero = 0;
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) {
        const double g = raw_out[m * HW + long(i) * W + j];
        const bool in_box = std::abs(i - mi) <= R && std::abs(j - mj) <= R;
        cb(std::isfinite(g) && (in_box || g == 0) ? 0.0 : 1.0, 0.0, "raw grad finite, zero outside the box", m);
        nonzero += g != 0;
        // The estimate's and the score's gradient w.r.t. the filtered map: the window only.
        const double go = out[m * HW + long(i) * W + j];
        const bool in_window = std::abs(i - mi) <= window / 2 && std::abs(j - mj) <= window / 2;
        cb(std::isfinite(go) && (in_window || go == 0) ? 0.0 : 1.0, 0.0, "grad finite, zero outside the window", m);
      }
    cb(nonzero > 0 ? 0.0 : 1.0, 0.0, "raw grad nonzero", m);
  }
  verdict(cb, err);
}

// ---------------------------------------------------------------- decode with the pre-filter: fused = two-pass
// The fused kernels (one launch; the map, or the box around the argmax, in shared memory) against
// the two-pass path (blur_pass twice into temporaries, then decode_kernel / decode_backward_kernel
// and the filter back): the same argmax, score and coordinates bit for bit, and the same gradient
// (the fused backward filters back in double, the two-pass one in T).
template <typename T>
void test_fused(int M, int H, int W, int window, double blur, uint64_t seed) {
  namespace sc = shr_ops::cuda;
  const long HW = long(H) * W, n = M * HW;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<T> hm(n);
  for (int m = 0; m < M; ++m) {
    const double cx = m == 0 ? 0.3 : u(rng) * (W - 1), cy = m == 1 ? H - 1.2 : u(rng) * (H - 1);
    for (long p = 0; p < HW; ++p) {
      const double dx = p % W - cx, dy = p / W - cy;
      hm[m * HW + p] = static_cast<T>(std::exp(-(dx * dx + dy * dy) / 8) + 0.05 * u(rng));
    }
  }
  const int rf = static_cast<int>(std::ceil(3 * blur)), r = window / 2;
  const auto k = small_taps<T>(blur);
  const sc::FitParams fp{static_cast<int>(shr_ops::fit::box_radius(window, blur, H, W)), blur,
                         shr_ops::fit::stop_step(sizeof(T) == 8)};
  std::vector<T> F;
  int err = prefilter(hm, F, H, W, k);
  std::vector<T> c2(2 * M), s2(M), c1(2 * M, T(-7)), s1(M, T(-7));
  std::vector<int64_t> i2(M), i1(M, -7);
  err += cudaemu::launch(sc::decode_kernel<T, T, T, sc::kSmallTaps, true>, dim3(M), dim3(kThreads), 0, F.data(), hm.data(),
                         c2.data(), s2.data(), i2.data(), H, W, r, static_cast<T>(40.0), fp, k);
  const int64_t smem = sc::decode_fused_smem<T, T>(HW);
  cudaemu::set_max_dynamic_smem(reinterpret_cast<const void*>(&sc::decode_fused_kernel<T, T, sc::kSmallTaps>), int(smem));
  err += cudaemu::launch(sc::decode_fused_kernel<T, T, sc::kSmallTaps>, dim3(M), dim3(kThreads), smem, hm.data(),
                         c1.data(), s1.data(), i1.data(), H, W, r, static_cast<T>(40.0), k, fp);
  char nm[160];
  std::snprintf(nm, sizeof nm, "decode fused = two-pass %s %dx%d M=%d w=%d blur=%g", tname<T>(), H, W, M, window, blur);
  Cmp c{nm, 0, 0};
  for (int m = 0; m < M; ++m) {
    c(double(i1[m]), double(i2[m]), "index", m);
    c(s1[m], double(s2[m]), "score", m);
    c(c1[2 * m], double(c2[2 * m]), "x", m);
    c(c1[2 * m + 1], double(c2[2 * m + 1]), "y", m);
  }
  verdict(c, err);
  // backward
  std::vector<T> gc(2 * M), gs(M);
  for (auto& v : gc) v = static_cast<T>(u(rng) - 0.5);
  for (auto& v : gs) v = static_cast<T>(u(rng) - 0.5);
  std::vector<T> out(n), raw_out(n), back(n), g2(n), g1(n, T(-7));
  int bad = 0;
  err = cudaemu::launch(sc::decode_backward_kernel<T, T, T, sc::kSmallTaps, true>, dim3(M), dim3(kThreads), 0, gc.data(),
                        gs.data(), F.data(), hm.data(), i2.data(), out.data(), raw_out.data(), &bad, H, W, r,
                        static_cast<T>(40.0), fp, k);
  err += prefilter(out, back, H, W, k);
  for (long p = 0; p < n; ++p) g2[p] = back[p] + raw_out[p];
  const sc::BackwardSmem layout = sc::BackwardSmem::of<T, T>(H, W, r, rf);
  cudaemu::set_max_dynamic_smem(reinterpret_cast<const void*>(&sc::decode_backward_fused_kernel<T, T, sc::kSmallTaps>),
                                int(layout.bytes));
  err += cudaemu::launch(sc::decode_backward_fused_kernel<T, T, sc::kSmallTaps>, dim3(M), dim3(kThreads), layout.bytes,
                         gc.data(), gs.data(), hm.data(), i2.data(), g1.data(), &bad, H, W, r, static_cast<T>(40.0), k,
                         fp, layout);
  err += bad;
  std::snprintf(nm, sizeof nm, "decode_backward fused = two-pass %s %dx%d M=%d w=%d blur=%g", tname<T>(), H, W, M,
                window, blur);
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-12;
  Cmp cb{nm, tol, tol};
  for (long p = 0; p < n; ++p) cb(g1[p], double(g2[p]), "grad", p);
  verdict(cb, err);
}

// ---------------------------------------------------------------- blur_pass (grid-stride loop)
template <typename T>
void test_blur(int M, int H, int W, int r, unsigned grid, uint64_t seed) {
  const long n = long(M) * H * W;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<T> x(n), tmp(n, T(-7)), y(n, T(-7)), k(2 * r + 1);
  for (auto& v : x) v = static_cast<T>(u(rng));
  double s = 0;
  for (int d = -r; d <= r; ++d) s += std::exp(-0.5 * d * d / (0.5 * r * r + 0.5));
  for (int d = -r; d <= r; ++d) k[d + r] = static_cast<T>(std::exp(-0.5 * d * d / (0.5 * r * r + 0.5)) / s);
  using Taps = shr_ops::cuda::HalfTaps<T, shr_ops::cuda::kSmallTaps>;
  Taps half{};
  half.r = r;
  for (int e = 0; e <= r; ++e) half.half[e] = k[r + e];
  int err = cudaemu::launch(shr_ops::cuda::blur_pass_kernel<T, T, shr_ops::cuda::kSmallTaps>, dim3(grid),
                            dim3(kThreads), 0, x.data(), tmp.data(), n, H, W, true, half);
  err += cudaemu::launch(shr_ops::cuda::blur_pass_kernel<T, T, shr_ops::cuda::kSmallTaps>, dim3(grid), dim3(kThreads),
                         0, tmp.data(), y.data(), n, H, W, false, half);
  char nm[160];
  std::snprintf(nm, sizeof nm, "blur_pass x2 %s M=%d %dx%d r=%d grid=%u", tname<T>(), M, H, W, r, grid);
  const double tol = sizeof(T) == 4 ? 2e-6 : 1e-13;
  Cmp c{nm, tol, tol};
  std::vector<double> rows(n);
  for (long p = 0; p < n; ++p) {
    const int j = int(p % W);
    double a = 0;
    for (int d = -r; d <= r; ++d)
      if (j + d >= 0 && j + d < W) a += double(k[d + r]) * double(x[p + d]);
    rows[p] = a;
  }
  for (long p = 0; p < n; ++p) {
    const int i = int((p / W) % H);
    double a = 0;
    for (int d = -r; d <= r; ++d)
      if (i + d >= 0 && i + d < H) a += double(k[d + r]) * rows[p + long(d) * W];
    c(y[p], a, "y", p);
  }
  verdict(c, err);
}

// ---------------------------------------------------------------- heatmap_loss (+ backward)
template <typename pred_t, typename acc_t>
void test_loss(int M, int H, int W, double sigma, double fw, double thr, double scale, uint64_t seed) {
  const long HW = long(H) * W;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<acc_t> lm(2 * M);
  for (int m = 0; m < M; ++m) lm[2 * m] = static_cast<acc_t>(u(rng) * W), lm[2 * m + 1] = static_cast<acc_t>(u(rng) * H);
  if (M > 1) lm[2] = static_cast<acc_t>(kNaN);  // a missing landmark: its target is zero
  std::unique_ptr<bool[]> vis(new bool[M]);
  for (int m = 0; m < M; ++m) vis[m] = m != M - 1 || M < 3;
  std::vector<pred_t> pred(M * HW);
  for (auto& v : pred) v = static_cast<pred_t>(u(rng) * scale);
  const auto k = shr_ops::loss_params<acc_t>(sigma, fw, thr, scale);
  const size_t smem = shr_ops::cuda::loss_launch_shape<acc_t>(M, H, W).smem;  // as the launcher
  std::vector<double> partial(M, -7);
  acc_t loss = -7, again = -7;
  unsigned int done = 0;  // the completion count: back at 0 after each launch
  const double N = double(M) * HW;
  int err = cudaemu::launch(shr_ops::cuda::heatmap_loss_kernel<pred_t, acc_t>, dim3(M), dim3(kThreads), smem,
                            pred.data(), lm.data(), vis.get(), partial.data(), &done, &loss, H, W, N, k);
  const unsigned int done_after_first = done;
  err += cudaemu::launch(shr_ops::cuda::heatmap_loss_kernel<pred_t, acc_t>, dim3(M), dim3(kThreads), smem,
                         pred.data(), lm.data(), vis.get(), partial.data(), &done, &again, H, W, N, k);
  if (done_after_first != 0 || done != 0 || !(again == loss)) {
    std::printf("FAIL heatmap_loss completion count: %u then %u after two launches, losses %.17g and %.17g\n",
                done_after_first, done, double(loss), double(again));
    ++g_failed;
  }
  acc_t g = static_cast<acc_t>(0.75);
  std::vector<pred_t> gp(M * HW, pred_t(-7));
  std::vector<acc_t> glm(2 * M, acc_t(-7));
  err += cudaemu::launch(shr_ops::cuda::heatmap_loss_backward_kernel<pred_t, acc_t>, dim3(M), dim3(kThreads), smem,
                         &g, pred.data(), lm.data(), vis.get(), gp.data(), glm.data(), H, W, N, k);
  char nm[160];
  std::snprintf(nm, sizeof nm, "heatmap_loss+backward %s M=%d %dx%d", tname<acc_t>(), M, H, W);
  const double tol = sizeof(acc_t) == 4 ? 2e-5 : 1e-11;
  Cmp c{nm, tol, tol};
  double L = 0;
  const double c2 = 2 * double(g) / N;
  for (int m = 0; m < M; ++m) {
    const double x = lm[2 * m], y = lm[2 * m + 1];
    const bool valid = std::isfinite(x) && std::isfinite(y) && vis[m];
    double sx = 0, sy = 0, ax = 0, ay = 0;
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j) {
        const long p = m * HW + long(i) * W + j;
        const double tg = valid ? scale * std::exp(-((j - x) * (j - x) + (i - y) * (i - y)) / (2 * sigma * sigma)) : 0;
        const double w = tg > thr * scale ? fw : 1.0, d = double(pred[p]) - tg;
        L += w * d * d;
        c(gp[p], c2 * w * d, "grad_pred", p);
        if (valid) sx += w * d * tg * (j - x), sy += w * d * tg * (i - y), ax += std::fabs(w * d * tg * (j - x)),
                   ay += std::fabs(w * d * tg * (i - y));
      }
    const double e = sizeof(acc_t) == 4 ? 1e-5 : 1e-12, kk = c2 / (sigma * sigma);
    Cmp cg{nm, e * kk * ax + 1e-30, 0};
    cg(glm[2 * m], -kk * sx, "grad_lm.x", m);
    cg.atol = e * kk * ay + 1e-30;
    cg(glm[2 * m + 1], -kk * sy, "grad_lm.y", m);
    c.n += cg.n, c.bad += cg.bad;
  }
  c(loss, L / N, "loss", 0);
  verdict(c, err);
}

// ---------------------------------------------------------------- cudaemu's own primitives
// Shuffle results against the CUDA Programming Guide's definitions, per-warp sums of a 256-thread
// block (the pattern of block_sum), and a 2-D block's thread numbering.
__global__ void shfl_probe(int* out, const int* cases) {  // one block per (kind, arg, width)
  const int* k = cases + 3 * blockIdx.x;
  const int kind = k[0], arg = k[1], width = k[2], tid = threadIdx.x, v = tid * 3 + 1;
  int r = 0;
  switch (kind) {
    case 0: r = __shfl_down_sync(0xffffffffu, v, arg, width); break;
    case 1: r = __shfl_up_sync(0xffffffffu, v, arg, width); break;
    case 2: r = __shfl_xor_sync(0xffffffffu, v, arg, width); break;
    case 3: r = __shfl_sync(0xffffffffu, v, arg, width); break;
  }
  out[blockIdx.x * blockDim.x + tid] = r;
}
__global__ void warp_sums(const float* in, float* out) {
  float v = in[threadIdx.x];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if ((threadIdx.x & 31) == 0) out[threadIdx.x >> 5] = v;
}
__global__ void ids_2d(int* out) {
  __shared__ int seen[6 * 40];
  const int tid = threadIdx.x + threadIdx.y * blockDim.x;
  seen[tid] = tid;
  __syncthreads();
  out[blockIdx.x * 240 + tid] = seen[239 - tid] + 1000 * static_cast<int>(blockIdx.x);
}
void test_cudaemu() {
  Cmp c{"cudaemu shuffles (down/up/xor/idx, widths 32..2)", 0, 0};
  std::vector<int> cases;
  for (int kind = 0; kind < 4; ++kind)
    for (int width : {32, 16, 8, 4, 2})
      for (int arg : {0, 1, 3, 5, 16, 31}) cases.insert(cases.end(), {kind, arg, width});
  const int nc = static_cast<int>(cases.size() / 3);
  std::vector<int> out(256 * nc, -1);
  int err = cudaemu::launch(shfl_probe, dim3(nc), dim3(256), 0, out.data(), cases.data());
  for (int b = 0; b < nc; ++b) {
    const int kind = cases[3 * b], arg = cases[3 * b + 1], width = cases[3 * b + 2];
    for (int tid = 0; tid < 256; ++tid) {
      const int lane = tid & 31, seg = lane / width * width, base = tid - lane;
      int src = lane;  // the CUDA Programming Guide's definitions
      if (kind == 0 && lane - seg + arg < width) src = lane + arg;
      if (kind == 1 && lane - seg >= arg) src = lane - arg;
      // xor: "each group of width threads can access earlier groups; from later ones, its own value"
      if (kind == 2 && (lane ^ arg) < seg + width) src = lane ^ arg;
      if (kind == 3) src = seg + arg % width;
      c(out[b * 256 + tid], (base + src) * 3 + 1, "shfl", b * 256 + tid);
    }
  }
  verdict(c, err);
  std::vector<float> in(256), sums(8, -1);
  for (int i = 0; i < 256; ++i) in[i] = float(i);
  err = cudaemu::launch(warp_sums, dim3(1), dim3(256), 0, in.data(), sums.data());
  Cmp c2{"cudaemu per-warp shfl_down sums of 0..255", 0, 0};
  for (int w = 0; w < 8; ++w) c2(sums[w], 32.0 * 32 * w + 496, "sum", w);
  verdict(c2, err);
  std::vector<int> ids(3 * 240, -1);
  err = cudaemu::launch(ids_2d, dim3(3), dim3(40, 6), 0, ids.data());
  Cmp c3{"cudaemu 2-D block ids + __shared__ + barrier", 0, 0};
  for (int b = 0; b < 3; ++b)
    for (int t = 0; t < 240; ++t) c3(ids[b * 240 + t], 239 - t + 1000 * b, "id", b * 240 + t);
  verdict(c3, err);
}

// ---------------------------------------------------------------- the emulator's checks fire
// Each kernel below breaks one rule of CUDA; the emulator must count an error for it (and go on).
__global__ void divergent_barrier(int* out) {
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}
__global__ void uneven_barriers(int* out) {
  if (threadIdx.x == 0) return;  // thread 0 exits before the barrier the others reach
  __syncthreads();
  out[threadIdx.x] = 1;
}
__global__ void partial_mask_shuffle(int* out) {
  out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, static_cast<int>(threadIdx.x), 1);
}
__global__ void exited_lane_shuffle(int* out) {
  if (threadIdx.x == 31) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}
__global__ void failing_assert(int* out) {
  CUDA_KERNEL_ASSERT(threadIdx.x != 5);
  out[threadIdx.x] = 1;
}
__global__ void takes_shared(int* out) {
  SHR_DYNAMIC_SMEM(smem);
  smem[threadIdx.x] = 1;
  out[threadIdx.x] = smem[threadIdx.x];
}
__global__ void deadlock(int* out) {  // lane 0 waits for lanes 1-31 at the block barrier, they for it
  int v = static_cast<int>(threadIdx.x);
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    v = __shfl_down_sync(0xffffffffu, v, 1);
  }
  out[threadIdx.x] = v;
}

void expect_errors(const char* what, int errors) {
  const bool ok = errors > 0;
  (ok ? g_passed : g_failed)++;
  std::printf("%s emulator reports %-40s %d error(s)\n", ok ? "PASS" : "FAIL", what, errors);
  cudaemu::take_launch_errors();  // these errors were wanted
}

void test_checks() {
  std::vector<int> out(2048, 0);
  std::fprintf(stderr, "cudaemu: (the errors below, up to 'end of the expected errors', are wanted)\n");
  expect_errors("a divergent __syncthreads", cudaemu::launch(divergent_barrier, dim3(2), dim3(64), 0, out.data()));
  expect_errors("a __syncthreads count mismatch", cudaemu::launch(uneven_barriers, dim3(1), dim3(64), 0, out.data()));
  expect_errors("a shuffle with a partial mask", cudaemu::launch(partial_mask_shuffle, dim3(1), dim3(32), 0, out.data()));
  expect_errors("a shuffle from an exited lane", cudaemu::launch(exited_lane_shuffle, dim3(1), dim3(32), 0, out.data()));
  expect_errors("a failed CUDA_KERNEL_ASSERT", cudaemu::launch(failing_assert, dim3(2), dim3(32), 0, out.data()));
  expect_errors("a block of 1025 threads", cudaemu::launch(takes_shared, dim3(1), dim3(1025), 0, out.data()));
  expect_errors("a grid of 65536 in y", cudaemu::launch(takes_shared, dim3(1, 65536), dim3(1), 0, out.data()));
  expect_errors("48 KiB + 1 of shared memory, no opt-in",
                cudaemu::launch(takes_shared, dim3(1), dim3(32), 48 * 1024 + 1, out.data()));
  const bool optin = cudaemu::set_max_dynamic_smem(reinterpret_cast<const void*>(takes_shared), 64 * 1024) == 0;
  const int errors = cudaemu::launch(takes_shared, dim3(1), dim3(32), 64 * 1024, out.data());
  expect_errors("shared memory over the opt-in",
                cudaemu::launch(takes_shared, dim3(1), dim3(32), 64 * 1024 + 1, out.data()));
  std::fprintf(stderr, "cudaemu: (end of the expected errors)\n");
  const bool ok = optin && errors == 0 && out[31] == 1;
  (ok ? g_passed : g_failed)++;
  std::printf("%s emulator allows 64 KiB of shared memory after cudaFuncSetAttribute\n", ok ? "PASS" : "FAIL");
}

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "all";
  const bool all = which == "all";
  if (which == "deadlock") {  // must not return: the emulator aborts after CUDAEMU_TIMEOUT seconds
    std::vector<int> out(256, 0);
    cudaemu::launch(deadlock, dim3(1), dim3(32), 0, out.data());
    std::printf("FAIL the deadlock was not detected\n");
    return 1;
  }
  if (all || which == "selftest") test_cudaemu();
  if (all || which == "checks") test_checks();
  if (all || which == "encode") {
    // landmarks: inside, on the border, outside the frame, NaN, invisible
    const std::vector<double> lm5 = {10.3, 7.7, 0.0, 47.0, -3.2, 20.5, kNaN, 5.0, 30.25, 30.75};
    const std::vector<int> vis5 = {1, 1, 1, 1, 0};
    test_encode<float, float>(64, 48, lm5, vis5, 2.5, -1, 1);
    test_encode<float, float>(64, 48, lm5, {}, 2.5, 5.55, 2);
    test_encode<float, float>(17, 300, {150.4, 8.2, 299.9, 0.1, 260.6, 16.3}, {}, 4.0, 6.55, 3);  // W > 256 threads
    test_encode<double, double>(1, 1, {0.0, 0.0, 0.4, -0.3}, {}, 1.0, -1, 4);
    test_encode<double, double>(37, 29, {3.3, 4.4, 28.1, 36.2, 14.5, 18.5, 1e30, 2.0}, {}, 1.7, 3.35, 5);
    test_encode<float, float, double>(0 + 23, 31, {11.1, 12.2, 5.5, 20.5}, {1, 1}, 3.0, -1, 6);  // grad f64, acc f32
    test_encode<double, double, float>(23, 31, {11.1, 12.2, 5.5, 20.5}, {1, 0}, 3.0, 9.05, 7);
    test_encode<float, float>(144, 6000, {2999.5, 71.3}, {}, 40.0, -1, 8);  // 2(H+W)*4 + scratch > 48 KiB: opt-in
  }
  if (all || which == "decode") {
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> u(0, 0.5);
    auto noise = [&](int M, int H, int W) {
      std::vector<double> v(long(M) * H * W);
      for (auto& x : v) x = u(rng);
      return v;
    };
    auto peak = [&](std::vector<double>& v, int m, int H, int W, double x, double y) {
      for (int i = 0; i < H; ++i)
        for (int j = 0; j < W; ++j) v[long(m) * H * W + long(i) * W + j] += std::exp(-((j - x) * (j - x) + (i - y) * (i - y)) / 8);
    };
    {
      const int H = 64, W = 48;
      auto v = noise(4, H, W);
      peak(v, 0, H, W, 20.3, 30.6), peak(v, 1, H, W, 0.2, 0.1), peak(v, 2, H, W, 47.7, 63.4), peak(v, 3, H, W, 24, 2.5);
      test_decode<float, float>(H, W, v, 2, 10.0, 21, "peaks");
      test_decode<double, double>(H, W, v, 3, 5.0, 22, "peaks");
    }
    {
      const int H = 5, W = 7;  // fewer pixels than threads, ties, NaN, constant map
      std::vector<double> v(4 * 35, 0.25);
      v[0 * 35 + 30] = 2.0, v[0 * 35 + 9] = 2.0;                            // tie: the lower index wins
      v[1 * 35 + 17] = kNaN, v[1 * 35 + 3] = 5.0, v[1 * 35 + 33] = kNaN;    // the first NaN wins
      v[3 * 35 + 34] = 1.0;                                                 // last pixel, clipped window
      test_decode<float, float>(H, W, v, 1, 10.0, 23, "tie/NaN/flat/corner");
    }
    test_decode<float, float>(1, 1, {0.5, -2.0}, 2, 10.0, 24, "1x1");
    {
      auto v = noise(2, 100, 90);  // HW = 9000: many strided iterations per thread
      peak(v, 0, 100, 90, 77.7, 12.2), peak(v, 1, 100, 90, 5.5, 94.4);
      test_decode<float, float>(100, 90, v, 4, 20.0, 25, "large");
    }
    // The fit: interior, edge, corner and one-row maps, at the defaults and a wide box.
    const std::vector<double> c5 = {20.3, 30.6, 0.0, 0.0, 47.0, 12.25, 0.4, 63.0, 25.5, 1.2};
    test_fit<float>(64, 48, c5, 2.0, 9, 2.0);
    test_fit<double>(64, 48, c5, 1.5, 9, 2.0);
    test_fit<double>(64, 48, c5, 3.0, 5, 3.0);
    test_fit<double>(1, 40, {0.3, 0.0, 17.6, 0.0}, 2.0, 9, 2.0);
  }
  if (all || which == "fused") {
    test_fused<float>(4, 64, 64, 9, 2.0, 51);
    test_fused<double>(3, 40, 56, 9, 2.0, 52);
    test_fused<float>(3, 13, 29, 3, 0.7, 53);
    test_fused<double>(2, 7, 9, 5, 4.5, 54);  // the filter wider than the frame
  }
  if (all || which == "blur") {
    test_blur<float>(3, 20, 30, 3, 3, 31);                     // 3 blocks for 1800 values: grid-stride
    test_blur<double>(2, 9, 40, 4, (2 * 9 * 40 + 255) / 256, 32);
    test_blur<float>(1, 5, 3, 6, 1, 33);                       // filter wider than the frame
  }
  if (all || which == "loss") {
    test_loss<float, float>(3, 30, 40, 2.0, 5.0, 0.1, 1.0, 41);
    test_loss<double, double>(4, 17, 300, 3.0, 2.0, 0.2, 2.5, 42);
    test_loss<double, double>(1000, 3, 5, 1.0, 2.0, 0.2, 1.0, 44);  // M > 256 partials: the last block strides
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed || cudaemu::g_errors ? 1 : 0;
}
