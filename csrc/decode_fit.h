// decode's sub-pixel estimate with the pre-filter: a least-squares fit of an isotropic Gaussian to
// the raw map over the box around the filtered argmax (docs/edge_exact_decoder.md; the reference is
// shr_ops/gaussian_fit.py). The model, the Levenberg-Marquardt iteration, the validity test, the
// start width and the gradient's 4 x 4 system, shared by the CPU kernel (cpu/decode/fit.h, which
// computes the sums from separable 1D tables) and the CUDA kernel (cuda/decode_device.cuh, which
// sums per pixel over the block). Only the sums over the box touch the data; everything here is
// a few dozen scalar operations in double. No ATen: host and device.
//
// Per map: phi = (A, x, y, lam), k_p = exp(-lam ((j - x)^2 + (i - y)^2)) over the box's pixels p =
// (i, j), min_phi sum_p (h_p - A k_p)^2. Per axis the model factors, k = ky(i) kx(j), and each
// derivative of k is a sum of products of 1D terms (AxisTerms).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "shr_math.h"

namespace shr_ops {
namespace fit {

constexpr int kMaxIterations = 20;  // Levenberg-Marquardt iterations at most
constexpr double kConverged = 1e-6;  // px: a fit whose last step is larger is not used
constexpr double kMaxStep = 1.0;  // px: each step of x and y is clamped to this
constexpr double kMaxLogLamStep = 0.7;  // each step changes lam by a factor of at most e^0.7
constexpr double kMuStart = 1e-3, kMuDown = 0.1, kMuUp = 10.0, kMuMin = 1e-9;  // damping, relative to diag N
constexpr double kDoubleEps = 2.220446049250313e-16;

// Finite (not NaN, not infinite), the same on host and device.
SHR_HOST_DEVICE inline bool finite(double v) { return ::fabs(v) <= DBL_MAX; }

// A map stops iterating after a step below this (px; taken untried): 1e-12 for float64 maps, 1e-7 for the others.
SHR_HOST_DEVICE inline double stop_step(bool float64_maps) { return float64_maps ? 1e-12 : 1e-7; }

// The fit box's radius: the window's, grown to the pre-filter's radius ceil(3 blur), at most the
// frame's larger side; 0 (no fit) for window 1.
SHR_HOST_DEVICE inline int64_t box_radius(int64_t window, double blur, int64_t H, int64_t W) {
  if (window / 2 == 0) return 0;
  const int64_t rf = static_cast<int64_t>(::ceil(3.0 * blur));
  const int64_t r = window / 2 > rf ? window / 2 : rf;
  const int64_t n = H > W ? H : W;
  return r < n ? r : n;
}

// The model's 1D terms at u = position - centre on one axis:
//   k = exp(-lam u^2)   p = dk/dc = 2 lam u k    pp = (4 lam^2 u^2 - 2 lam) k
//   l = dk/dlam = -u^2 k    ll = u^4 k    pl = 2 u (1 - lam u^2) k
struct AxisTerms {
  double k, p, l, pp, pl, ll;
};
// The terms from k = exp(-lam u^2) computed by the caller (gaussian_row's table, or axis_terms).
SHR_HOST_DEVICE inline AxisTerms axis_terms_of(double u, double lam, double k) {
  const double uk = u * k;
  return AxisTerms{k, 2 * lam * uk, -u * uk, (4 * lam * lam * u * u - 2 * lam) * k, 2 * uk * (1 - lam * u * u),
                   u * u * u * uk};
}
SHR_HOST_DEVICE inline AxisTerms axis_terms(double u, double lam) { return axis_terms_of(u, lam, ::exp(-lam * u * u)); }

// k[a] = exp(-lam (pos0 + a - c)^2) for a in [0, n), lam > 0, with four exponentials instead of n:
// from the position a* nearest c, outward by k(u +- 1) = k(u) exp(-lam (1 +- 2u)), the ratio's
// exponential itself carried by the factor exp(-2 lam) a step. Every factor is <= 1 (going right
// u >= u* >= -1/2, going left u <= u* <= 1/2; a* clamped into the row keeps the sign), so nothing
// overflows and a tail underflows to 0 as the exponentials would. Each value is a product of at
// most 2 |a - a*| + 1 rounded factors: relative error about 2 |a - a*| eps (3e-15 at 7 px).
SHR_HOST_DEVICE inline void gaussian_row(int64_t pos0, int64_t n, double c, double lam, double* k) {
  if (n <= 0) return;
  double af = ::floor(c - static_cast<double>(pos0) + 0.5);
  if (!(af >= 0)) af = 0;  // (NaN c: any a*, the values are NaN)
  if (af > static_cast<double>(n - 1)) af = static_cast<double>(n - 1);
  const int64_t as = static_cast<int64_t>(af);
  const double us = static_cast<double>(pos0 + as) - c;
  const double q = ::exp(-2 * lam);
  k[as] = ::exp(-lam * us * us);
  double r = ::exp(-lam * (2 * us + 1));  // k(u + 1) / k(u) at u = us
  for (int64_t a = as + 1; a < n; ++a, r *= q) k[a] = k[a - 1] * r;
  r = ::exp(-lam * (1 - 2 * us));  // k(u - 1) / k(u) at u = us
  for (int64_t a = as - 1; a >= 0; --a, r *= q) k[a] = k[a + 1] * r;
}

// (k, dk/dx, dk/dy, dk/dlam) of the 2D model from the row (ty) and column (tx) terms.
SHR_HOST_DEVICE inline void pixel_first(const AxisTerms& ty, const AxisTerms& tx, double dk[4]) {
  dk[0] = ty.k * tx.k;
  dk[1] = ty.k * tx.p;
  dk[2] = ty.p * tx.k;
  dk[3] = ty.k * tx.l + ty.l * tx.k;
}

// Index of (a, b), a <= b, in a packed symmetric 4 x 4 matrix (00 01 02 03 11 12 13 22 23 33).
SHR_HOST_DEVICE inline int sym(int a, int b) {
  if (a > b) {
    const int t = a;
    a = b;
    b = t;
  }
  return a * 4 - a * (a - 1) / 2 + (b - a);
}

// The sums of one model evaluation that an iteration needs: D[a] = sum_p h_p d_a k_p and
// T[sym(a, b)] = sum_p d_a k_p d_b k_p for a, b in (k, x, y, lam).
struct Moments {
  double D[4];
  double T[10];
};
// The model's sums T (Moments' order) from the 1D dots of each axis' terms, y[6] and x[6] in the
// order kk kp kl pp pl ll (the model factors per axis, so every sum over the box is a product of
// 1D dots): the CPU kernel's and the CUDA kernel's, alike.
SHR_HOST_DEVICE inline void template_sums(const double y[6], const double x[6], double T[10]) {
  T[sym(0, 0)] = y[0] * x[0];
  T[sym(0, 1)] = y[0] * x[1];
  T[sym(0, 2)] = y[1] * x[0];
  T[sym(0, 3)] = y[0] * x[2] + y[2] * x[0];
  T[sym(1, 1)] = y[0] * x[3];
  T[sym(1, 2)] = y[1] * x[1];
  T[sym(1, 3)] = y[0] * x[4] + y[2] * x[1];
  T[sym(2, 2)] = y[3] * x[0];
  T[sym(2, 3)] = y[1] * x[2] + y[4] * x[0];
  T[sym(3, 3)] = y[0] * x[5] + 2 * y[2] * x[2] + y[5] * x[0];
}

// Solve the symmetric positive definite 4 x 4 system M d = g (M packed) by Cholesky, in place: M
// becomes its factor L (packed, L[i][j] at sym(i, j)) and g the solution d (each entry is
// overwritten only after its last use, so the arithmetic is that of separate arrays); false when a
// pivot is not positive. Each pivot's reciprocal is taken once and multiplied by (4 divisions
// where the factor and the two triangular solves would take 14, one after another).
SHR_HOST_DEVICE inline bool solve_spd4(double M[10], double g[4]) {
  double inv[4];  // 1 / L[i][i]
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j <= i; ++j) {
      double v = M[sym(i, j)];
      for (int k = 0; k < j; ++k) v -= M[sym(i, k)] * M[sym(j, k)];
      if (i == j) {
        if (!(v > 0)) return false;
        M[sym(i, i)] = ::sqrt(v);
        inv[i] = 1.0 / M[sym(i, i)];
      } else {
        M[sym(i, j)] = v * inv[j];
      }
    }
  }
  for (int i = 0; i < 4; ++i) {  // L z = g: z in g
    double v = g[i];
    for (int k = 0; k < i; ++k) v -= M[sym(i, k)] * g[k];
    g[i] = v * inv[i];
  }
  for (int i = 3; i >= 0; --i) {  // L^T d = z: d in g
    double v = g[i];
    for (int k = i + 1; k < 4; ++k) v -= M[sym(k, i)] * g[k];
    g[i] = v * inv[i];
  }
  return true;
}

// Solve the 4 x 4 system M v = g (M full, row-major in M[16], any sign) by Gaussian elimination
// with partial pivoting, in place in M and g; false when it is singular (a zero pivot). M and g
// may be in memory the caller chooses (CUDA: shared memory, where rows swapped at run time would
// otherwise go to local memory).
SHR_HOST_DEVICE inline bool solve4(double* M, double* g, double v[4]) {
  for (int c = 0; c < 4; ++c) {
    int piv = c;
    for (int r = c + 1; r < 4; ++r)
      if (::fabs(M[r * 4 + c]) > ::fabs(M[piv * 4 + c])) piv = r;
    if (!(M[piv * 4 + c] != 0)) return false;
    if (piv != c) {
      for (int k = 0; k < 4; ++k) {
        const double t = M[c * 4 + k];
        M[c * 4 + k] = M[piv * 4 + k];
        M[piv * 4 + k] = t;
      }
      const double t = g[c];
      g[c] = g[piv];
      g[piv] = t;
    }
    for (int r = c + 1; r < 4; ++r) {
      const double f = M[r * 4 + c] / M[c * 4 + c];
      for (int k = c; k < 4; ++k) M[r * 4 + k] -= f * M[c * 4 + k];
      g[r] -= f * g[c];
    }
  }
  for (int i = 3; i >= 0; --i) {
    double s = g[i];
    for (int k = i + 1; k < 4; ++k) s -= M[i * 4 + k] * v[k];
    v[i] = s / M[i * 4 + i];
  }
  return true;
}

// The fit's starting lam = 1 / (2 s^2), from the curvature of log F at its argmax. f[axis][0..2]
// are F at the three pixels around the argmax on that axis (shifted inward at the edge), used
// where has[axis] (the axis has >= 3 pixels): their second difference of log F is -1 / sF^2 for a
// Gaussian of std sF, and sF^2 = s^2 + blur^2 for a Gaussian of std s pre-filtered by one of std
// blur. s^2 = the mean of the usable axes' sF^2 minus blur^2, clamped to [blur^2 / 16, 16 blur^2];
// blur^2 where no axis is usable (F not positive there, or not curved down).
SHR_HOST_DEVICE inline double start_lam(const double f[2][3], const bool has[2], double blur) {
  const double b2 = blur * blur;
  double sum = 0;
  int n = 0;
  for (int a = 0; a < 2; ++a) {
    if (!has[a] || !(f[a][0] > 0 && f[a][1] > 0 && f[a][2] > 0)) continue;
    const double d = ::log(f[a][0]) - 2 * ::log(f[a][1]) + ::log(f[a][2]);
    if (d < 0) {
      sum += -1.0 / d;
      ++n;
    }
  }
  double s2 = n > 0 ? sum / n - b2 : b2;
  if (!finite(s2)) s2 = b2;
  const double lo = b2 / 16, hi = b2 * 16;
  s2 = s2 < lo ? lo : (s2 > hi ? hi : s2);
  return 1.0 / (2.0 * s2);
}

struct Result {
  double A, x, y, lam, step;
  int iterations;
  bool free_x, free_y;
  bool valid;
};

// Levenberg-Marquardt for min sum (h - A k)^2 from (x0, y0, lam0), A profiled at the start. Each
// iteration builds N = J^T J and g = J^T r (J = (k, A k_x, A k_y, A k_lam)) from the moments at the
// current point, solves (N + mu diag N) d = g with frozen parameters (an axis with one pixel in
// the frame) kept, and clamps the step. A step of x and y below `stop` px is the last: it is taken
// without evaluating the model there (the Newton step of a converged fit, whose residual test
// would cost one more evaluation of the sums, a quarter of a clean map's fit), and the iteration
// ends (a NaN step ends it too, untaken). Otherwise the model is evaluated once at the trial
// point, which is accepted when the residual A^2 E - 2 A C (+ sum h^2) does not grow beyond
// rounding, and the iteration goes on, for kMaxIterations steps at most. valid: converged (last step < kConverged), finite, A > 0, lam within 100x of
// 1 / (2 blur^2), and (x, y) within R + 0.5 of the argmax (mi, mj).
//
// The iteration is a state (FitState) advanced between evaluations by fit_start, fit_propose and
// fit_accept, so that a caller can keep it out of the registers the evaluation needs: the CPU's
// gaussian_fit holds it in locals; CUDA's warp_fit in shared memory, advanced by one lane while
// the warp evaluates the sums (cuda/decode_device.cuh). Both do the same arithmetic.
struct FitState {
  double A, x, y, lam;     // the current point
  double f, mu, step;      // its residual (up to sum h^2), the damping, the last step (px)
  double stop;             // px: a step below this ends the iteration
  double At, xt, yt, lt;   // the trial point
  int it, cur;             // iterations begun; which of the two Moments holds the current point's
  bool free_x, free_y;     // the axes with more than one pixel in the frame
};

// The state at the start (x0, y0, lam0), whose moments m0 are in store[0].
SHR_HOST_DEVICE inline void fit_start(FitState& s, const Moments& m0, double x0, double y0, double lam0, bool free_x,
                                      bool free_y, double stop) {
  s.cur = 0;
  s.A = m0.D[0] / m0.T[0], s.x = x0, s.y = y0, s.lam = lam0;
  s.f = s.A * (s.A * m0.T[0] - 2 * m0.D[0]);
  s.mu = kMuStart, s.step = INFINITY, s.stop = stop;
  s.it = 0;
  s.free_x = free_x, s.free_y = free_y;
}

// The next trial point from the current point's moments m (store[s.cur]) into s.At, s.xt, s.yt,
// s.lt, with N[10] and g[4] as the solve's scratch; false when the iteration stops instead
// (kMaxIterations begun; a step below s.stop, taken here; a NaN step or a singular system: step
// NaN, not valid).
SHR_HOST_DEVICE inline bool fit_propose(FitState& s, const Moments& m, double N[10], double g[4]) {
  if (s.it >= kMaxIterations) return false;
  ++s.it;
  const double A = s.A;
  const double sc[4] = {1.0, A, A, A};
  const bool free_[4] = {true, s.free_x, s.free_y, true};
  for (int a = 0; a < 4; ++a)
    for (int b = a; b < 4; ++b) N[sym(a, b)] = sc[a] * sc[b] * m.T[sym(a, b)];
  for (int a = 0; a < 4; ++a) g[a] = sc[a] * m.D[a] - A * N[sym(a, 0)];
  for (int a = 0; a < 4; ++a) {
    if (free_[a]) continue;
    for (int b = 0; b < 4; ++b) N[sym(a, b)] = a == b ? 1.0 : 0.0;
    g[a] = 0;
  }
  for (int a = 0; a < 4; ++a) N[sym(a, a)] *= 1 + s.mu;
  const double* d = g;  // the step, in place of g
  if (!solve_spd4(N, g)) {  // singular: not valid
    s.step = NAN;
    return false;
  }
  const double dx = ::fmax(-kMaxStep, ::fmin(kMaxStep, d[1])), dy = ::fmax(-kMaxStep, ::fmin(kMaxStep, d[2]));
  const double dl = ::fmax(-kMaxLogLamStep, ::fmin(kMaxLogLamStep, d[3] / s.lam));
  s.step = ::fmax(::fabs(dx), ::fabs(dy));
  const double At = A + d[0], xt = s.x + dx, yt = s.y + dy, lt = s.lam * ::exp(dl);
  if (!(s.step >= s.stop)) {  // converged: the last step is taken untried, and the iteration ends
    if (s.step < s.stop) s.A = At, s.x = xt, s.y = yt, s.lam = lt;  // (NaN: stopped, not valid)
    return false;
  }
  s.At = At, s.xt = xt, s.yt = yt, s.lt = lt;
  return true;
}

// Accepts or rejects the trial point from its moments mt (store[1 - s.cur]).
SHR_HOST_DEVICE inline void fit_accept(FitState& s, const Moments& mt) {
  const double ft = s.At * (s.At * mt.T[0] - 2 * mt.D[0]);
  if (ft <= s.f + 8 * kDoubleEps * ::fabs(s.f)) {  // not worse, up to rounding (NaN: rejected)
    s.A = s.At, s.x = s.xt, s.y = s.yt, s.lam = s.lt, s.f = ft, s.cur = 1 - s.cur;
    s.mu = ::fmax(s.mu * kMuDown, kMuMin);
  } else {
    s.mu *= kMuUp;
  }
}

// The fit's result from the stopped state.
SHR_HOST_DEVICE inline Result fit_result(const FitState& s, double blur, int64_t mi, int64_t mj, int64_t R) {
  const double lam_ref = 1.0 / (2.0 * blur * blur);
  const bool ok = finite(s.A) && finite(s.x) && finite(s.y) && finite(s.lam);
  const bool valid = ok && s.A > 0 && s.lam > lam_ref / 100 && s.lam < lam_ref * 100 && s.step < kConverged &&
                     ::fabs(s.x - static_cast<double>(mj)) <= static_cast<double>(R) + 0.5 &&
                     ::fabs(s.y - static_cast<double>(mi)) <= static_cast<double>(R) + 0.5;
  return Result{s.A, s.x, s.y, s.lam, s.step, s.it, s.free_x, s.free_y, valid};
}

// The fit with the state in locals (the CPU's): eval(x, y, lam, Moments&) computes the sums over
// the box at a point into store[0] or store[1] (the current point's and the trial's).
template <typename Eval, typename Store>
SHR_HOST_DEVICE inline Result gaussian_fit(Eval&& eval, Store& store, double x0, double y0, double lam0, bool free_x,
                                           bool free_y, double blur, int64_t mi, int64_t mj, int64_t R, double stop) {
  FitState s;
  eval(x0, y0, lam0, store[0]);
  fit_start(s, store[0], x0, y0, lam0, free_x, free_y, stop);
  double N[10], g[4];
  while (fit_propose(s, store[s.cur], N, g)) {
    eval(s.xt, s.yt, s.lt, store[1 - s.cur]);
    fit_accept(s, store[1 - s.cur]);
  }
  return fit_result(s, blur, mi, mj, R);
}

// gaussian_fit's two Moments, held by the caller (the CPU's).
struct LocalMoments {
  Moments m[2];
  SHR_HOST_DEVICE Moments& operator[](int i) { return m[i]; }
};

// The sums the gradient needs beyond Moments (at the solution): D2[e] = sum_p h_p d_e k_p and
// K2[e] = sum_p k_p d_e k_p for the second derivatives e in the order xx, yy, xy, x lam, y lam,
// lam lam (row term x column term: k pp, pp k, p p, k pl + l p, pl k + p l, k ll + 2 l l + ll k).
struct SecondMoments {
  double D2[6];
  double K2[6];
};

// The gradient of a valid fit (implicit function theorem): with the exact Hessian of the objective
// Hs = N - sum_p r_p d^2(A k_p)/d phi^2 (r = h - A k), frozen parameters' rows and columns
// replaced by the identity, v = Hs^-1 gphi, gphi = d loss / d (A, x, y, lam) (a frozen axis' entry
// 0). The gradient w.r.t. h_p is then v0 k_p + A (v1 k_x + v2 k_y + v3 k_lam) over the box
// (pixel_grad). A singular Hs gives v = 0 (no gradient through the fit). Hs[16] and g[4]: the
// system's scratch (solve4's).
SHR_HOST_DEVICE inline void grad_coefficients(const Result& r, const Moments& m, const SecondMoments& s,
                                              const double gphi[4], double v[4], double* Hs_, double* g) {
  const double A = r.A, sc[4] = {1.0, A, A, A};
  auto Hs = [Hs_](int a, int b) -> double& { return Hs_[a * 4 + b]; };
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) Hs(a, b) = sc[a] * sc[b] * m.T[sym(a, b)];
  // d^2 (A k) / dA d theta_a = d_a k: sum r d_a k = sum h d_a k - A sum k d_a k.
  for (int a = 1; a < 4; ++a) {
    const double w = m.D[a] - A * m.T[sym(0, a)];
    Hs(0, a) -= w;
    Hs(a, 0) -= w;
  }
  // d^2 (A k) / d theta_a d theta_b = A d_ab k.
  const int e[4][4] = {{-1, -1, -1, -1}, {-1, 0, 2, 3}, {-1, 2, 1, 4}, {-1, 3, 4, 5}};
  for (int a = 1; a < 4; ++a)
    for (int b = 1; b < 4; ++b) Hs(a, b) -= A * (s.D2[e[a][b]] - A * s.K2[e[a][b]]);
  const bool free_[4] = {true, r.free_x, r.free_y, true};
  for (int a = 0; a < 4; ++a) {
    if (free_[a]) continue;
    for (int b = 0; b < 4; ++b) Hs(a, b) = Hs(b, a) = a == b ? 1.0 : 0.0;
  }
  g[0] = gphi[0], g[1] = r.free_x ? gphi[1] : 0.0, g[2] = r.free_y ? gphi[2] : 0.0, g[3] = gphi[3];
  if (!solve4(Hs_, g, v)) v[0] = v[1] = v[2] = v[3] = 0;
}

// ---------------------------------------------------------------------------- the model's bias
// decode's result where the fit is valid: the soft-argmax estimate s of the pre-filtered map,
// corrected by its own bias on the fitted Gaussian, s - S + (x, y), S the same soft-argmax (the
// window around the same argmax, the same temperature) of the pre-filtered model
// M(i, j) = A By(i) Bx(j), rounded to the compute dtype as the filtered maps are. Per axis,
// By(i) = sum_d tap(d) k(i + d - rf - y) over the source rows inside [0, n) (the zero border), the
// taps in increasing d as the pre-filter holds them (in acc_t, as doubles); its derivatives w.r.t.
// the centre and lam filter p and l the same way.
struct BlurredTerms {
  double k, p, l;
};
// terms(q): the model's AxisTerms at source position q (axis_terms(q - c, lam), or a table of them).
template <typename Tap, typename Terms>
SHR_HOST_DEVICE inline BlurredTerms blurred_terms(int64_t pos, const Tap& tap, int rf, int64_t n, const Terms& terms) {
  BlurredTerms b{0.0, 0.0, 0.0};
  for (int d = 0; d <= 2 * rf; ++d) {
    const int64_t q = pos + d - rf;
    if (q < 0 || q >= n) continue;
    const AxisTerms t = terms(q);
    const double w = tap(d);
    b.k += w * t.k;
    b.p += w * t.p;
    b.l += w * t.l;
  }
  return b;
}

// The model's value at a window pixel from its row (ty) and column (tx) terms.
SHR_HOST_DEVICE inline double model_value(double A, const BlurredTerms& ty, const BlurredTerms& tx) {
  return A * ty.k * tx.k;
}

// Adds w dM/d(A, x, y, lam) at a window pixel into gphi (w: d loss / d M there, negated by the caller
// as the bias is subtracted).
SHR_HOST_DEVICE inline void add_model_grad(double w, double A, const BlurredTerms& ty, const BlurredTerms& tx,
                                           double gphi[4]) {
  gphi[0] += w * ty.k * tx.k;
  gphi[1] += w * A * ty.k * tx.p;
  gphi[2] += w * A * ty.p * tx.k;
  gphi[3] += w * A * (ty.l * tx.k + ty.k * tx.l);
}

// d loss / d h_p of one pixel of the box, from grad_coefficients' v and the pixel's dk.
SHR_HOST_DEVICE inline double pixel_grad(const double v[4], double A, const double dk[4]) {
  return v[0] * dk[0] + A * (v[1] * dk[1] + v[2] * dk[2] + v[3] * dk[3]);
}

}  // namespace fit
}  // namespace shr_ops
