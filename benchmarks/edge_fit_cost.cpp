// Cost probe of the edge-exact decoder's fit (docs/edge_exact_decoder.md): the per-map work the CPU
// kernel would add, scalar C++ in double, against today's window soft-argmax on the same windows.
// Not the kernel: a self-contained measurement (no torch), checked by its own error on clean maps.
//
//   g++ -O3 -march=x86-64 -o /tmp/edge_fit_cost benchmarks/edge_fit_cost.cpp && /tmp/edge_fit_cost
//   (add -DREAL=float for the tables and window sums in float)
//
// Maps: 64 x 64, a Gaussian of sigma 2 at a random centre (one coordinate within 3 px of an edge
// for half of them), clean or + N(0, 0.05^2). The window: 9 x 9 around the raw argmax, clipped to
// the frame, 13 x 13 for the fit (the kernel places it at the pre-filter's argmax; the fit does not
// care which). The fit starts at the soft-argmax estimate with the width of sigma 2.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace {

constexpr int kR = 6, kN = 2 * kR + 1;  // the fit's 13 x 13 box (edge_decode.FIT_WINDOW)

// The tables and the window sums in `real`, the 4 x 4 system in double. -DREAL=float is not the
// design: J^T r = J^T h - A J^T k cancels at the solution, so in float the fit stops short (errors up
// to ~5e-4 px on clean maps, and most fits miss the 1e-6 px convergence test); it is barely faster.
#ifndef REAL
#define REAL double
#endif
using real = REAL;
constexpr double kTol = sizeof(real) == 4 ? 1e-5 : 1e-7;

struct Axis {  // 1D tables over the window's kN positions on one axis, zero past the clipped box's n
  int n;
  real k[kN], p[kN], l[kN];  // k, dk/dc, dk/dlam
};

// k = exp(-lam u^2) for u = pos - c, by the recurrence k(u + 1) = k(u) exp(-lam (2u + 1)):
// three exponentials per axis instead of n.
inline void tables(Axis& t, int pos0, double c, double lam) {
  real u = static_cast<real>(pos0 - c), L = static_cast<real>(lam);
  real k = std::exp(-L * u * u), step = std::exp(-L * (2 * u + 1)), q = std::exp(-2 * L);
  for (int a = 0; a < kN; ++a, u += 1) {
    const real kk = a < t.n ? k : real(0);
    t.k[a] = kk;
    t.p[a] = 2 * L * u * kk;
    t.l[a] = -u * u * kk;
    k *= step;
    step *= q;
  }
}

struct Sums {
  double C, Cx, Cy, Cl;                 // data: sum h k, sum h dk/dx, sum h dk/dy, sum h dk/dlam
  double xkk, xkp, xkl, xpp, xpl, xll;  // template, x axis: sum kx kx, sum kx kx', ...
  double ykk, ykp, ykl, ypp, ypl, yll;
};

inline void sums(const real* S, int ld, const Axis& ty, const Axis& tx, Sums& s) {
  // Down the rows first: V[b] = sum_a ty[a] S[a][b] for the three y tables, element-wise in b (the
  // compiler vectorises it without reassociating a sum); then five dot products of length kN.
  real V0[kN] = {}, V1[kN] = {}, V2[kN] = {};
  for (int a = 0; a < kN; ++a) {
    const real* row = S + a * ld;
    const real k = ty.k[a], p = ty.p[a], l = ty.l[a];
    for (int b = 0; b < kN; ++b) {
      V0[b] += k * row[b];
      V1[b] += p * row[b];
      V2[b] += l * row[b];
    }
  }
  real C = 0, Cx = 0, Cy = 0, Cl = 0;
  for (int b = 0; b < kN; ++b) {
    C += V0[b] * tx.k[b];
    Cx += V0[b] * tx.p[b];
    Cy += V1[b] * tx.k[b];
    Cl += V0[b] * tx.l[b] + V2[b] * tx.k[b];
  }
  s.C = C, s.Cx = Cx, s.Cy = Cy, s.Cl = Cl;
  auto t1 = [](const Axis& t, double& kk_, double& kp_, double& kl_, double& pp_, double& pl_, double& ll_) {
    real kk = 0, kp = 0, kl = 0, pp = 0, pl = 0, ll = 0;
    for (int a = 0; a < kN; ++a) {
      kk += t.k[a] * t.k[a], kp += t.k[a] * t.p[a], kl += t.k[a] * t.l[a];
      pp += t.p[a] * t.p[a], pl += t.p[a] * t.l[a], ll += t.l[a] * t.l[a];
    }
    kk_ = kk, kp_ = kp, kl_ = kl, pp_ = pp, pl_ = pl, ll_ = ll;
  };
  t1(tx, s.xkk, s.xkp, s.xkl, s.xpp, s.xpl, s.xll);
  t1(ty, s.ykk, s.ykp, s.ykl, s.ypp, s.ypl, s.yll);
}

// Solve the 4 x 4 symmetric positive system M d = g by Cholesky; false if not positive definite.
inline bool solve4(double M[4][4], const double g[4], double d[4]) {
  double L[4][4] = {};
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j <= i; ++j) {
      double v = M[i][j];
      for (int k = 0; k < j; ++k) v -= L[i][k] * L[j][k];
      if (i == j) {
        if (!(v > 0)) return false;
        L[i][i] = std::sqrt(v);
      } else {
        L[i][j] = v / L[j][j];
      }
    }
  }
  double z[4];
  for (int i = 0; i < 4; ++i) {
    double v = g[i];
    for (int k = 0; k < i; ++k) v -= L[i][k] * z[k];
    z[i] = v / L[i][i];
  }
  for (int i = 3; i >= 0; --i) {
    double v = z[i];
    for (int k = i + 1; k < 4; ++k) v -= L[k][i] * d[k];
    d[i] = v / L[i][i];
  }
  return true;
}

struct Fit {
  double A, x, y, lam, step;
  int iterations;
  bool valid;
};

// Levenberg-Marquardt as shr_ops/edge_decode.py's gauss_newton_fit (both axes free).
Fit fit(const real* S, int ld, int ny, int nx, int i0, int j0, double x, double y, double lam, int max_it,
        double tol) {
  Axis ty{ny}, tx{nx};
  tables(ty, i0, y, lam);
  tables(tx, j0, x, lam);
  Sums s;
  sums(S, ld, ty, tx, s);
  double A = s.C / (s.xkk * s.ykk), f = A * (A * s.xkk * s.ykk - 2 * s.C), mu = 1e-3, step = INFINITY;
  int it = 0;
  const double eps = 2.220446049250313e-16;
  for (; it < max_it; ++it) {
    const double E = s.xkk * s.ykk;
    double N[4][4];
    N[0][0] = E;
    N[0][1] = A * s.xkp * s.ykk;
    N[0][2] = A * s.xkk * s.ykp;
    N[0][3] = A * (s.xkl * s.ykk + s.xkk * s.ykl);
    N[1][1] = A * A * s.xpp * s.ykk;
    N[2][2] = A * A * s.xkk * s.ypp;
    N[1][2] = A * A * s.xkp * s.ykp;
    N[1][3] = A * A * (s.xpl * s.ykk + s.xkp * s.ykl);
    N[2][3] = A * A * (s.xkl * s.ykp + s.xkk * s.ypl);
    N[3][3] = A * A * (s.xll * s.ykk + 2 * s.xkl * s.ykl + s.xkk * s.yll);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < i; ++j) N[i][j] = N[j][i];
    const double g[4] = {s.C - A * N[0][0], A * s.Cx - A * N[1][0], A * s.Cy - A * N[2][0], A * s.Cl - A * N[3][0]};
    for (int i = 0; i < 4; ++i) N[i][i] *= 1 + mu;
    double d[4];
    if (!solve4(N, g, d)) return Fit{A, x, y, lam, INFINITY, it, false};
    const double dx = std::fmax(-1.0, std::fmin(1.0, d[1])), dy = std::fmax(-1.0, std::fmin(1.0, d[2]));
    const double dl = std::fmax(-0.7, std::fmin(0.7, d[3] / lam));
    const double At = A + d[0], xt = x + dx, yt = y + dy, lt = lam * std::exp(dl);
    Axis tyt{ny}, txt{nx};
    tables(tyt, i0, yt, lt);
    tables(txt, j0, xt, lt);
    Sums st;
    sums(S, ld, tyt, txt, st);
    const double ft = At * (At * st.xkk * st.ykk - 2 * st.C);
    step = std::fmax(std::fabs(dx), std::fabs(dy));
    if (ft <= f + 8 * eps * std::fabs(f)) {
      A = At, x = xt, y = yt, lam = lt, f = ft, s = st;
      mu = std::fmax(mu * 0.1, 1e-9);
    } else {
      mu *= 10;
    }
    if (step < tol) {
      ++it;
      break;
    }
  }
  return Fit{A, x, y, lam, step, it, step < 1e-6 && A > 0};
}

// Today's window soft-argmax (temperature 40) over the 9 x 9 window around the argmax (clipped), for
// scale: 81 exponentials.
inline void soft_argmax(const real* S, int ld, int ny, int nx, int mi, int mj, int i0, int j0, double& x,
                        double& y) {
  const real peak = S[(mi - i0) * ld + (mj - j0)];
  const int a0 = std::max(0, mi - 4 - i0), a1 = std::min(ny - 1, mi + 4 - i0);
  const int b0 = std::max(0, mj - 4 - j0), b1 = std::min(nx - 1, mj + 4 - j0);
  double sw = 0, sx = 0, sy = 0;
  for (int a = a0; a <= a1; ++a) {
    double sr = 0, sxr = 0;
    for (int b = b0; b <= b1; ++b) {
      const real w = std::exp(real(40) * (S[a * ld + b] - peak));
      sr += w;
      sxr += w * (j0 + b - mj);
    }
    sw += sr;
    sx += sxr;
    sy += sr * (i0 + a - mi);
  }
  x = mj + sx / sw;
  y = mi + sy / sw;
}

}  // namespace

int main() {
  const int H = 64, W = 64, M = 20000;
  const double sigma = 2.0;
  std::mt19937_64 rng(0);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, 0.05);
  for (int noisy = 0; noisy < 2; ++noisy) {
    // Windows (9 x 9, clipped) and their boxes.
    std::vector<real> win(static_cast<size_t>(M) * kN * kN);
    std::vector<int> box(4 * M);  // i0, j0, ny, nx
    std::vector<int> am(2 * M);   // argmax
    std::vector<double> tx(M), ty(M), sx(M), sy(M);
    std::vector<real> map(H * W);
    for (int m = 0; m < M; ++m) {
      double cx = U(rng) * (W - 1), cy = U(rng) * (H - 1);
      if (m % 2 == 0) {  // one coordinate within 3 px of an edge pixel centre
        const double d = 3 * U(rng);
        if (U(rng) < 0.5) cx = U(rng) < 0.5 ? d : W - 1 - d;
        else cy = U(rng) < 0.5 ? d : H - 1 - d;
      }
      tx[m] = cx, ty[m] = cy;
      int best = 0;
      for (int i = 0; i < H; ++i)
        for (int j = 0; j < W; ++j) {
          map[i * W + j] = std::exp(-((j - cx) * (j - cx) + (i - cy) * (i - cy)) / (2 * sigma * sigma)) +
                           (noisy ? noise(rng) : 0.0);
          if (map[i * W + j] > map[best]) best = i * W + j;
        }
      const int mi = best / W, mj = best % W;
      const int i0 = std::max(0, mi - kR), i1 = std::min(H - 1, mi + kR);
      const int j0 = std::max(0, mj - kR), j1 = std::min(W - 1, mj + kR);
      box[4 * m] = i0, box[4 * m + 1] = j0, box[4 * m + 2] = i1 - i0 + 1, box[4 * m + 3] = j1 - j0 + 1;
      am[2 * m] = mi, am[2 * m + 1] = mj;
      for (int i = i0; i <= i1; ++i)
        for (int j = j0; j <= j1; ++j) win[static_cast<size_t>(m) * kN * kN + (i - i0) * kN + (j - j0)] = map[i * W + j];
    }
    // Today's soft-argmax (the start of the fit).
    auto t0 = std::chrono::steady_clock::now();
    for (int m = 0; m < M; ++m)
      soft_argmax(&win[static_cast<size_t>(m) * kN * kN], kN, box[4 * m + 2], box[4 * m + 3], am[2 * m], am[2 * m + 1],
                  box[4 * m], box[4 * m + 1], sx[m], sy[m]);
    auto t1 = std::chrono::steady_clock::now();
    double err_max = 0, err_sum = 0, it_sum = 0;
    int invalid = 0, it_max = 0;
    std::vector<Fit> fits(M);
    auto t2 = std::chrono::steady_clock::now();
    for (int m = 0; m < M; ++m)
      fits[m] = fit(&win[static_cast<size_t>(m) * kN * kN], kN, box[4 * m + 2], box[4 * m + 3], box[4 * m],
                    box[4 * m + 1], sx[m], sy[m], 1 / (2 * sigma * sigma), 20, kTol);
    auto t3 = std::chrono::steady_clock::now();
    for (int m = 0; m < M; ++m) {
      const Fit& f = fits[m];
      if (!f.valid) ++invalid;
      const double e = std::hypot(f.x - tx[m], f.y - ty[m]);
      err_sum += e, err_max = std::fmax(err_max, e), it_sum += f.iterations, it_max = std::max(it_max, f.iterations);
    }
    const double us_soft = std::chrono::duration<double, std::micro>(t1 - t0).count() / M;
    const double us_fit = std::chrono::duration<double, std::micro>(t3 - t2).count() / M;
    std::printf("[%s] %s maps: soft-argmax %.3f us/map; fit %.3f us/map (%.2f iterations on average, at most %d; "
                "stop at a step < %g px); fit error mean %.2e max %.2e px; not valid %d of %d\n",
                sizeof(real) == 4 ? "float" : "double", noisy ? "noisy" : "clean", us_soft, us_fit, it_sum / M, it_max, kTol, err_sum / M, err_max, invalid, M);
  }
  return 0;
}
