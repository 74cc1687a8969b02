// CPU decode, the fit: the least-squares Gaussian fit of the raw map over the box around the
// filtered argmax (the model, the iteration and the gradient's system are ../../decode_fit.h).
// Here the sums over the box, from separable 1D tables (their exponentials by fit::gaussian_row's
// recurrence): the box is copied once into doubles; per evaluation the rows are contracted with
// the row tables (down the rows, element-wise over the columns), then dotted with the column
// tables, and the template sums are products of 1D dots.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../../decode_fit.h"
#include "box.h"
#include "simd.h"

namespace shr_ops {
namespace cpu {

// 1D terms of one axis of the box at positions pos0, pos0 + 1, ...: k, p, l always; pp, pl, ll when
// `second` (the backward).
struct FitAxis {
  std::vector<double> k, p, l, pp, pl, ll;
  void fill(int64_t pos0, int64_t n, double c, double lam, bool second) {
    k.resize(n), p.resize(n), l.resize(n);
    if (second) pp.resize(n), pl.resize(n), ll.resize(n);
    fit::gaussian_row(pos0, n, c, lam, k.data());
    if (!second) {  // p and l as fit::axis_terms_of computes them, without the second-order terms
      for (int64_t a = 0; a < n; ++a) {
        const double u = static_cast<double>(pos0 + a) - c, uk = u * k[a];
        p[a] = 2 * lam * uk, l[a] = -u * uk;
      }
      return;
    }
    for (int64_t a = 0; a < n; ++a) {
      const fit::AxisTerms t = fit::axis_terms_of(static_cast<double>(pos0 + a) - c, lam, k[a]);
      k[a] = t.k, p[a] = t.p, l[a] = t.l, pp[a] = t.pp, pl[a] = t.pl, ll[a] = t.ll;
    }
  }
};

// a . b over n values, summed in order.
inline double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
inline double dot(const std::vector<double>& a, const std::vector<double>& b) { return dot(a.data(), b.data(), a.size()); }

// The fit of one map, with its scratch (reused across the maps of a thread).
struct GaussianFit {
  static constexpr int64_t kBlock = 4;  // columns contracted at a time, in registers
  Box b;
  int64_t ld = 0;            // the row stride of S and V: the box's columns rounded up to kBlock
  std::vector<double> S;     // the box's raw values, rows x ld (the columns past the box: 0)
  std::vector<double> V;     // 6 x ld: the rows contracted with ty's k, p, l, pp, pl, ll
  FitAxis ty, tx;
  Ahead* ahead = nullptr;    // the next map's read, 2 kLines a column block (the decode forward's), or nullptr
  const double* Vt(int t) const { return V.data() + t * ld; }

  template <typename in_t>
  void load(const in_t* h, int64_t W, const Box& box) {
    b = box;
    ld = (b.cols() + kBlock - 1) / kBlock * kBlock;
    S.resize(b.rows() * ld);
    V.resize(6 * ld);
    for (int64_t i = b.i0; i <= b.i1; ++i) {
      double* row = S.data() + (i - b.i0) * ld;
      for (int64_t j = b.j0; j <= b.j1; ++j) row[j - b.j0] = static_cast<double>(h[i * W + j]);
      std::fill(row + b.cols(), row + ld, 0.0);
    }
  }

  // V's first NT tables: column j of table t is sum_a w_t[a] S[a][j], summed down the rows in
  // order; kBlock columns at a time with all NT sums in registers (one read of S per evaluation).
  template <int NT>
  void contract() {
    const int64_t nr = b.rows();
    const double* w[6] = {ty.k.data(), ty.p.data(), ty.l.data(), ty.pp.data(), ty.pl.data(), ty.ll.data()};
    for (int64_t j = 0; j < ld; j += kBlock) {
      double acc[NT][kBlock] = {};
      if (ahead != nullptr) ahead->step(2 * Ahead::kLines);
      for (int64_t a = 0; a < nr; ++a) {
        const double* row = S.data() + a * ld + j;
        for (int t = 0; t < NT; ++t) {
          const double c = w[t][a];
          for (int e = 0; e < kBlock; ++e) acc[t][e] += c * row[e];
        }
      }
      for (int t = 0; t < NT; ++t)
        for (int e = 0; e < kBlock; ++e) V[t * ld + j + e] = acc[t][e];
    }
  }

  // The tables at (x, y, lam) and the rows contracted with them (all six with `second`).
  void tables(double x, double y, double lam, bool second) {
    ty.fill(b.i0, b.rows(), y, lam, second);
    tx.fill(b.j0, b.cols(), x, lam, second);
    if (second)
      contract<6>();
    else
      contract<3>();
  }

  void moments(double x, double y, double lam, fit::Moments& m) {
    tables(x, y, lam, false);
    sums(m);
  }

  // The moments from the tables last computed (tables()): the 1D dots of each axis in one pass,
  // each summed in order.
  void sums(fit::Moments& m) const {
    const int64_t nc = b.cols(), nr = b.rows();
    const double *V0 = Vt(0), *V1 = Vt(1), *V2 = Vt(2);
    double d[5] = {}, x[6] = {}, y[6] = {};
    for (int64_t c = 0; c < nc; ++c) {
      const double k = tx.k[c], p = tx.p[c], l = tx.l[c];
      d[0] += V0[c] * k, d[1] += V0[c] * p, d[2] += V1[c] * k, d[3] += V0[c] * l, d[4] += V2[c] * k;
      x[0] += k * k, x[1] += k * p, x[2] += k * l, x[3] += p * p, x[4] += p * l, x[5] += l * l;
    }
    for (int64_t a = 0; a < nr; ++a) {
      const double k = ty.k[a], p = ty.p[a], l = ty.l[a];
      y[0] += k * k, y[1] += k * p, y[2] += k * l, y[3] += p * p, y[4] += p * l, y[5] += l * l;
    }
    m.D[0] = d[0], m.D[1] = d[1], m.D[2] = d[2], m.D[3] = d[3] + d[4];
    fit::template_sums(y, x, m.T);
  }

  // Fits the box `box` of the raw map h (stride W) from the start (x0, y0, lam0); (mi, mj) is the
  // argmax, R the box radius.
  template <typename in_t>
  fit::Result run(const in_t* h, int64_t W, const Box& box, double x0, double y0, double lam0, double blur,
                  int64_t mi, int64_t mj, int64_t R, double stop) {
    load(h, W, box);
    auto eval = [this](double x, double y, double lam, fit::Moments& m) { moments(x, y, lam, m); };
    fit::LocalMoments store;
    return fit::gaussian_fit(eval, store, x0, y0, lam0, box.cols() >= 2, box.rows() >= 2, blur, mi, mj, R, stop);
  }

  // Adds d loss / d h over the box (a valid fit r just run on it) into g (the box's rows x cols),
  // for the upstream gradient gphi w.r.t. (A, x, y, lam).
  void grad(const fit::Result& r, const double gphi[4], double* g) {
    tables(r.x, r.y, r.lam, true);  // the tables at the solution, with the second-order ones
    fit::Moments m;
    sums(m);
    const int64_t nc = b.cols();
    const auto dv = [&](int t, const std::vector<double>& x) { return dot(Vt(t), x.data(), nc); };
    fit::SecondMoments s;
    s.D2[0] = dv(0, tx.pp);
    s.D2[1] = dv(3, tx.k);
    s.D2[2] = dv(1, tx.p);
    s.D2[3] = dv(0, tx.pl) + dv(2, tx.p);
    s.D2[4] = dv(4, tx.k) + dv(1, tx.l);
    s.D2[5] = dv(0, tx.ll) + 2 * dv(2, tx.l) + dv(5, tx.k);
    const double ykk = dot(ty.k, ty.k), xkk = dot(tx.k, tx.k);
    s.K2[0] = ykk * dot(tx.k, tx.pp);
    s.K2[1] = dot(ty.k, ty.pp) * xkk;
    s.K2[2] = dot(ty.k, ty.p) * dot(tx.k, tx.p);
    s.K2[3] = ykk * dot(tx.k, tx.pl) + dot(ty.k, ty.l) * dot(tx.k, tx.p);
    s.K2[4] = dot(ty.k, ty.pl) * xkk + dot(ty.k, ty.p) * dot(tx.k, tx.l);
    s.K2[5] = ykk * dot(tx.k, tx.ll) + 2 * dot(ty.k, ty.l) * dot(tx.k, tx.l) + dot(ty.k, ty.ll) * xkk;
    double v[4], Hs[16], hg[4];
    fit::grad_coefficients(r, m, s, gphi, v, Hs, hg);
    for (int64_t a = 0; a < b.rows(); ++a) {
      const fit::AxisTerms yt{ty.k[a], ty.p[a], ty.l[a], 0, 0, 0};
      for (int64_t c = 0; c < nc; ++c) {
        const fit::AxisTerms xt{tx.k[c], tx.p[c], tx.l[c], 0, 0, 0};
        double dk[4];
        fit::pixel_first(yt, xt, dk);
        g[a * nc + c] += fit::pixel_grad(v, r.A, dk);
      }
    }
  }
};

// The fitted model over the decode window (fit::blurred_terms): its pre-filtered values M, rounded
// to acc_t, as a View for Window and window_grad, and the gradient of the soft-argmax's bias.
template <typename acc_t>
struct ModelWindow {
  Box w;
  std::vector<fit::BlurredTerms> ty, tx;
  std::vector<fit::AxisTerms> src;  // the model's terms at the source positions an axis' filter reads
  std::vector<double> kq;           // the backward's: their k (fit::gaussian_row)
  std::vector<double> kz;           // the forward's: k at pos0 - rf, ..., pos0 + n - 1 + rf, 0 outside the axis
  std::vector<double> ks;           // the forward's: the filtered k at pos0, ..., pos0 + n - 1
  std::vector<acc_t> M;
  // fit::blurred_terms at pos0, ..., pos0 + n - 1 on an axis of length len, with each source
  // position's terms computed once (the same values, summed in the same order). Without `grad`
  // (the forward, which needs the values only) only k: the same sums of k, without p and l.
  void axis(int64_t pos0, int64_t n, double c, double lam, const std::vector<acc_t>& taps, int64_t len, bool grad,
            std::vector<fit::BlurredTerms>& out) {
    const int64_t rf = static_cast<int64_t>(taps.size() / 2);
    const int64_t q0 = std::max<int64_t>(0, pos0 - rf), q1 = std::min<int64_t>(len - 1, pos0 + n - 1 + rf);
    out.resize(n);
    const auto tap = [&](int d) { return static_cast<double>(taps[d]); };
    if (!grad) {
      // The positions outside the axis hold 0: their terms add +0 to sums of terms >= 0, so the
      // sums are blurred_terms' (which skips them), bit for bit; the taps outermost, so that the
      // n sums advance together rather than one chain of additions after another.
      kz.assign(n + 2 * rf, 0.0);
      fit::gaussian_row(q0, q1 - q0 + 1, c, lam, kz.data() + (q0 - (pos0 - rf)));
      ks.assign(n, 0.0);
      for (int64_t d = 0; d <= 2 * rf; ++d) {
        const double w = tap(static_cast<int>(d));
        for (int64_t a = 0; a < n; ++a) ks[a] += w * kz[a + d];
      }
      for (int64_t a = 0; a < n; ++a) out[a] = fit::BlurredTerms{ks[a], 0.0, 0.0};
      return;
    }
    kq.resize(q1 - q0 + 1);
    fit::gaussian_row(q0, q1 - q0 + 1, c, lam, kq.data());
    src.resize(q1 - q0 + 1);
    for (int64_t q = q0; q <= q1; ++q) src[q - q0] = fit::axis_terms_of(static_cast<double>(q) - c, lam, kq[q - q0]);
    const auto terms = [&](int64_t q) { return src[q - q0]; };
    for (int64_t a = 0; a < n; ++a) out[a] = fit::blurred_terms(pos0 + a, tap, static_cast<int>(rf), len, terms);
  }
  // The model's values over the window wb; with `grad`, also the terms subtract_grad needs.
  void fill(const fit::Result& r, const Box& wb, const std::vector<acc_t>& taps, int64_t H, int64_t W, bool grad) {
    w = wb;
    M.resize(wb.rows() * wb.cols());
    axis(wb.i0, wb.rows(), r.y, r.lam, taps, H, grad, ty);
    axis(wb.j0, wb.cols(), r.x, r.lam, taps, W, grad, tx);
    for (int64_t a = 0; a < wb.rows(); ++a)
      for (int64_t c = 0; c < wb.cols(); ++c) M[a * wb.cols() + c] = static_cast<acc_t>(fit::model_value(r.A, ty[a], tx[c]));
  }
  View<acc_t> view() const { return View<acc_t>{M.data(), w.i0, w.j0, w.cols()}; }
  // gphi -= sum over the window of gm (d loss / d M, window_grad's on view()) dM / d(A, x, y, lam);
  // after fill(..., grad = true).
  void subtract_grad(const fit::Result& r, const double* gm, double gphi[4]) const {
    for (int64_t a = 0; a < w.rows(); ++a)
      for (int64_t c = 0; c < w.cols(); ++c) fit::add_model_grad(-gm[a * w.cols() + c], r.A, ty[a], tx[c], gphi);
  }
};

}  // namespace cpu
}  // namespace shr_ops
