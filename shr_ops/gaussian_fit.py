"""decode's sub-pixel estimate with the pre-filter, in pure PyTorch (the reference of the kernels'
csrc/decode_fit.h; the design and its measurements: docs/edge_exact_decoder.md).

reference.decode, per map (coordinates as everywhere in shr_ops: pixel (row i, col j) at x = j,
y = i):
  1. The pre-filtered map F (Gaussian of std `blur`, zero outside the frame, rounded to the
     compute dtype), m = its first argmax, the window x window box around m clipped to the frame,
     and the soft-argmax estimate (temperature t) over that box. The index and the score (F at m)
     come from here.
  2. Here (refine): a least-squares fit of an isotropic Gaussian to the *raw* map over the box
     around m of radius max(window // 2, ceil(3 blur)) (fit_radius: 13 x 13 at the defaults),
     clipped to the frame,
         min over (A, x, y, lam) of  sum_{p in box} (h_p - A exp(-lam |p - (x, y)|^2))^2,
     by Levenberg-Marquardt from the soft-argmax estimate, A profiled, and lam from the curvature
     of log F at m (start_width: sF^2 = s^2 + blur^2). The box is a fixed set of pixels, so a clean
     Gaussian of any sigma fits with zero residual however the frame clips the box: the fit is exact
     up to the corner, where the soft-argmax (whose weights miss the outside half of the peak) and
     the zero-border pre-filter (which pulls the filtered peak inward) are not. Noise enters
     linearly (no log of the data): it is the maximum-likelihood estimate under white Gaussian
     noise.
  3. The fit is valid when it converged (last step < CONVERGED px), is finite, A > 0, lam within
     100x of 1 / (2 blur^2), and (x, y) inside the box grown by half a pixel. Where it is valid the
     result is the soft-argmax estimate s (unrounded) corrected by its own bias on the fitted
     Gaussian: s - S + (x, y), S = model_soft_argmax, the same soft-argmax (window, argmax,
     temperature) of the pre-filtered model (zero border, taps and values rounded as the kernels
     hold them). On a Gaussian the map is the model, so s = S and the result is the fit; elsewhere
     it keeps the soft-argmax's behaviour without the window's and the zero border's pull (the fit
     alone was worse on trained networks' heatmaps: docs/edge_exact_decoder.md). Otherwise (flat,
     negative or garbage maps; window 1) the result is the soft-argmax estimate. Without the
     pre-filter (blur=None) there is no fit: decode is the plain local soft-argmax.

Gradient: for a valid fit, the soft-argmax estimate's (through the pre-filter), the score's, and
that of the fit's solution (implicit function theorem) through (x, y) and S: with
phi = (A, x, y, lam), J_p = d(A k_p)/d phi and the exact Hessian of the least-squares objective
Hs = sum_p J_p J_p^T - sum_p r_p d^2(A k_p)/d phi^2 (r_p = h_p - A k_p), d phi / d h_p = Hs^-1 J_p,
nonzero on the box only. For a fallback map, the soft-argmax's gradient. The forward value is the
converged iterate; phi's gradient is attached as phi + (Hs^-1 J^T h - stop_grad(.)), which adds
nothing to the value, and S is differentiated by autograd (tests/test_gaussian_fit.py runs
gradcheck in float64).

Everything here is computed in float64.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .filters import gaussian_blur

MAX_ITERATIONS = 20  # Levenberg-Marquardt iterations at most (clean peaks take about 3, noisy ones 4-7)
CONVERGED = 1e-6  # px: a fit whose last step is larger is not used (falls back to the soft-argmax)
# px: a map stops iterating after a step below this, by the dtype of the maps (the kernels' tolerance
# against the reference is 1e-10 for float64 and 1e-5 for float32)
STOP = {torch.float64: 1e-12, torch.float32: 1e-7, torch.float16: 1e-7, torch.bfloat16: 1e-7}
MAX_STEP = 1.0  # px: each step of x and y is clamped to this
MAX_LOG_LAM_STEP = 0.7  # each step changes lam by a factor of at most e^0.7
MU_START, MU_DOWN, MU_UP, MU_MIN = 1e-3, 0.1, 10.0, 1e-9  # Levenberg-Marquardt damping (relative to diag N)

# ---------------------------------------------------------------------------------- the model
# k_p = kx(j) ky(i), kx(j) = exp(-lam (j - x)^2). Per axis, the value and its derivatives w.r.t.
# the centre c ("p") and lam ("l"); u = position - c.
#   k = exp(-lam u^2)        p = 2 lam u k          pp = (4 lam^2 u^2 - 2 lam) k
#   l = -u^2 k               ll = u^4 k             pl = 2 u (1 - lam u^2) k
# A derivative of the 2D k is a sum of (y table) x (x table) outer products:
_D = {
    "": (("k", "k"),),
    "x": (("k", "p"),), "y": (("p", "k"),), "l": (("k", "l"), ("l", "k")),
    "xx": (("k", "pp"),), "yy": (("pp", "k"),), "xy": (("p", "p"),),
    "xl": (("k", "pl"), ("l", "p")), "yl": (("pl", "k"), ("p", "l")),
    "ll": (("k", "ll"), ("l", "l"), ("l", "l"), ("ll", "k")),
}
_PARAMS = ("x", "y", "l")


def _axis_tables(pos: Tensor, c: Tensor, lam: Tensor, inside: Tensor) -> dict:
    """The 1D tables of one axis: pos [..., n] pixel positions, c [...] the centre, inside [..., n]
    (0 outside the frame)."""
    u = pos - c[..., None]
    L = lam[..., None]
    k = torch.exp(-L * u * u) * inside
    uk = u * k
    return dict(k=k, p=2 * L * uk, pp=(4 * L * L * u * u - 2 * L) * k, l=-u * uk, ll=u * u * u * uk,
                pl=2 * uk * (1 - L * u * u))


def _blurred_axis_tables(pos: Tensor, c: Tensor, lam: Tensor, inside: Tensor, taps: Tensor, length: int) -> dict:
    """The 1D tables of the pre-filtered model on one axis: sum_d taps[d] t(pos + d - r) over the
    source positions inside [0, length) (the pre-filter's zero border), for each table t of
    _axis_tables. pos [..., n]; taps [2r + 1] (the pre-filter's, gaussian_taps)."""
    r = taps.numel() // 2
    q = pos[..., :, None] + torch.arange(-r, r + 1, dtype=pos.dtype, device=pos.device)
    inq = ((q >= 0) & (q < length)).to(pos.dtype)
    raw = _axis_tables(q, c[..., None], lam[..., None], inq)
    return {k: (v * taps).sum(-1) * inside for k, v in raw.items()}


def _dkey(a: str, b: str = "") -> str:
    """The _D key of the derivative w.r.t. params a then b (order-free)."""
    s = "".join(sorted(a + b, key="xyl".index))
    return s


def _contract(S: Tensor, ty: dict, tx: dict, key: str) -> Tensor:
    """sum_p S_p d_key k_p over the box: S [..., n, n] (rows, cols)."""
    return sum(torch.einsum("...ij,...i,...j->...", S, ty[a], tx[b]) for a, b in _D[key])


def _template(ty: dict, tx: dict, k1: str, k2: str) -> Tensor:
    """sum_p (d_k1 k_p)(d_k2 k_p): separable, sums of products of 1D dot products."""
    dot = lambda t, a, b: (t[a] * t[b]).sum(-1)  # noqa: E731
    return sum(dot(ty, a, c) * dot(tx, b, d) for a, b in _D[k1] for c, d in _D[k2])


def _jacobian_terms(ty, tx, A):
    """Template sums of the Jacobian J = (k, A k_x, A k_y, A k_l): the Gauss-Newton matrix N [..., 4, 4]."""
    keys = ("",) + _PARAMS
    scale = [torch.ones_like(A), A, A, A]
    rows = []
    for a, ka in enumerate(keys):
        rows.append(torch.stack([scale[a] * scale[b] * _template(ty, tx, ka, kb) for b, kb in enumerate(keys)], -1))
    return torch.stack(rows, -2)


def _data_terms(S, ty, tx, A):
    """J^T h [..., 4]: (sum h k, A sum h k_x, A sum h k_y, A sum h k_l)."""
    c = [_contract(S, ty, tx, "")] + [A * _contract(S, ty, tx, p) for p in _PARAMS]
    return torch.stack(c, -1)


def objective_hessian(S, ty, tx, A):
    """The exact Hessian [..., 4, 4] of 1/2 sum_p (h_p - A k_p)^2 w.r.t. (A, x, y, lam):
    N - sum_p r_p d^2(A k_p) / d phi^2, with r = h - A k."""
    N = _jacobian_terms(ty, tx, A)
    rows = [[None] * 4 for _ in range(4)]
    for a, pa in enumerate(_PARAMS, start=1):
        # d^2 (A k) / dA d theta_a = d_a k:  sum r d_a k = sum h d_a k - A sum k d_a k
        v = _contract(S, ty, tx, pa) - A * _template(ty, tx, "", pa)
        rows[0][a] = rows[a][0] = v
        for b, pb in enumerate(_PARAMS, start=1):
            if b < a:
                continue
            key = _dkey(pa, pb)
            w = A * (_contract(S, ty, tx, key) - A * _template(ty, tx, "", key))
            rows[a][b] = rows[b][a] = w
    rows[0][0] = torch.zeros_like(A)
    M = torch.stack([torch.stack(r, -1) for r in rows], -2)
    return N - M


# ---------------------------------------------------------------------------------- the fit


def _window(h: Tensor, index: Tensor, r: int):
    """The box of radius r around each argmax, clipped: values S [..., n, n] (0 outside the
    frame), row and column positions [..., n], inside masks [..., n]."""
    height, width = h.shape[-2:]
    mi, mj = index // width, index % width
    off = torch.arange(-r, r + 1, device=h.device)
    rows, cols = mi[..., None] + off, mj[..., None] + off
    iy = ((rows >= 0) & (rows < height)).to(h.dtype)
    ix = ((cols >= 0) & (cols < width)).to(h.dtype)
    flat_idx = rows.clamp(0, height - 1)[..., :, None] * width + cols.clamp(0, width - 1)[..., None, :]
    S = h.flatten(-2).gather(-1, flat_idx.flatten(-2)).unflatten(-1, (2 * r + 1, 2 * r + 1))
    S = S * iy[..., :, None] * ix[..., None, :]
    return S, rows.to(h.dtype), cols.to(h.dtype), iy, ix


def _energy(C: Tensor, E: Tensor, A: Tensor) -> Tensor:
    """sum_p (h_p - A k_p)^2 - sum_p h_p^2 = A^2 E - 2 A C (C = sum h k, E = sum k^2)."""
    return A * (A * E - 2 * C)


def fit_gaussian(S, rows, cols, iy, ix, x0, y0, lam0, *, max_iterations=MAX_ITERATIONS, fit_width=True,
                     ty_fn=None, tx_fn=None, stop=STOP[torch.float64]):
    """Levenberg-Marquardt (Gauss-Newton with a damping that grows on a step that does not lower
    the residual) for min sum (S - A k(x, y, lam))^2 over the box, from (x0, y0, lam0), A profiled
    at the start. An axis with a single pixel in the frame keeps its coordinate; lam is held at
    lam0 unless fit_width. Each iteration evaluates the model once, at the trial point: the
    residual there is A^2 E - 2 A C + sum S^2 (E, C the template's and the data's sums that the
    next step needs anyway), so the accept test costs nothing. A step of x and y below `stop` px is
    a map's last: it is taken without evaluating the model there (the Newton step of a converged
    fit; its accept test would cost an evaluation), and the map stops (a NaN step stops it too,
    untaken); or after max_iterations. Returns (A, x, y, lam, largest |step| of x, y in its last
    iteration, frozen mask [..., 3] of (x, y, lam), iterations per map: the model is evaluated
    1 + iterations times, less one where the last step was below `stop`). No autograd."""
    ty_fn = ty_fn or (lambda c, lam: _axis_tables(rows, c, lam, iy))
    tx_fn = tx_fn or (lambda c, lam: _axis_tables(cols, c, lam, ix))
    with torch.no_grad():
        x, y, lam = x0.clone(), y0.clone(), lam0.clone()
        frozen = torch.stack([ix.sum(-1) < 2, iy.sum(-1) < 2, torch.full_like(x, not fit_width, dtype=torch.bool)],
                             -1)
        free = torch.cat([torch.ones_like(frozen[..., :1]), ~frozen], -1).to(S.dtype)  # (A, x, y, lam)
        eye = torch.eye(4, dtype=S.dtype, device=S.device)
        ty, tx = ty_fn(y, lam), tx_fn(x, lam)
        C, E = _contract(S, ty, tx, ""), _template(ty, tx, "", "")
        A = C / E
        f = _energy(C, E, A)
        mu = torch.full_like(x, MU_START)
        eps = torch.finfo(S.dtype).eps
        step = torch.full_like(x, float("inf"))
        active = torch.ones_like(x, dtype=torch.bool)
        iterations = torch.zeros_like(x, dtype=torch.int64)
        for _ in range(max_iterations):
            iterations += active
            N = _jacobian_terms(ty, tx, A)
            g = _data_terms(S, ty, tx, A) - A[..., None] * N[..., :, 0]  # J^T r
            # Frozen parameters: their rows and columns replaced by the identity, their step 0.
            Nd = N * (free[..., :, None] * free[..., None, :]) + eye * (1 - free[..., :, None])
            Nd = Nd + mu[..., None, None] * torch.diag_embed(torch.diagonal(Nd, dim1=-2, dim2=-1))
            d, status = torch.linalg.solve_ex(Nd, (g * free)[..., None])
            d = torch.where((status == 0)[..., None], d[..., 0], torch.full_like(g, float("nan")))  # singular: invalid
            dx, dy = d[..., 1].clamp(-MAX_STEP, MAX_STEP), d[..., 2].clamp(-MAX_STEP, MAX_STEP)
            dl = (d[..., 3] / lam).clamp(-MAX_LOG_LAM_STEP, MAX_LOG_LAM_STEP)
            At, xt, yt, lt = A + d[..., 0], x + dx, y + dy, lam * torch.exp(dl)
            step = torch.where(active, torch.maximum(dx.abs(), dy.abs()), step)
            last = active & (step < stop)  # taken untried, and the map stops (a NaN step: stops, untaken)
            A, x, y, lam = (torch.where(last, new, old) for new, old in ((At, A), (xt, x), (yt, y), (lt, lam)))
            active = active & (step >= stop)
            if not bool(active.any()):
                break
            tyt, txt = ty_fn(yt, lt), tx_fn(xt, lt)
            Ct, Et = _contract(S, tyt, txt, ""), _template(tyt, txt, "", "")
            ft = _energy(Ct, Et, At)
            ok = active & (ft <= f + 8 * eps * f.abs())  # not worse, up to rounding (NaN: rejected)
            A, x, y, lam, f = (torch.where(ok, new, old) for new, old in ((At, A), (xt, x), (yt, y), (lt, lam), (ft, f)))
            ty = {k: torch.where(ok[..., None], tyt[k], ty[k]) for k in ty}
            tx = {k: torch.where(ok[..., None], txt[k], tx[k]) for k in tx}
            mu = torch.where(active, torch.where(ok, (mu * MU_DOWN).clamp_min(MU_MIN), mu * MU_UP), mu)
        return A, x, y, lam, step, frozen, iterations


def fit_radius(window: int, blur: float) -> int:
    """The fit's box radius: the window's, grown to the pre-filter's radius ceil(3 blur) (6 at the
    default blur 2: a 13 x 13 box; the 9 x 9 window loses 0.4 % (noise) to 2 % (network-like maps)
    against today's decoder away from the edge, 13 x 13 gains)."""
    return max(window // 2, int(math.ceil(3 * blur)))


def refine(h64: Tensor, F: Tensor, index: Tensor, soft: Tensor, soft64: Tensor, *, window: int, temperature: float,
           blur: float, dtype: torch.dtype, radius: int | None = None, max_iterations: int = MAX_ITERATIONS):
    """decode's coordinates [..., K, 2] (float64) and info for maps h64 [..., K, H, W] (float64),
    their pre-filtered F (the compute dtype), the filtered argmax index [..., K], the soft-argmax
    estimate soft [..., K, 2] (rounded to the compute dtype: the fit's start, and the result where
    the fit is not valid) and soft64, the same unrounded (float64): where the fit is valid, soft64
    corrected by its own bias on the fitted Gaussian, soft64 - model_soft_argmax(fit) + (x, y);
    soft elsewhere. dtype: the maps' own (it sets the stop and the model's rounding). radius
    overrides fit_radius (experiments). info["fit"]: the fit's own centre (float64)."""
    height, width = h64.shape[-2:]
    r = min(fit_radius(window, blur) if radius is None else radius, max(height, width))
    if window // 2 == 0 or r == 0:  # the argmax (window 1): no fit
        return soft.to(torch.float64), dict(valid=torch.zeros(index.shape, dtype=torch.bool, device=index.device))
    lam0 = start_width(F.detach().to(torch.float64), index, blur, blur)
    fit, info = _fit_coords(h64, index, soft, r, blur, max_iterations, start_lam=lam0,
                            stop=STOP.get(dtype, STOP[torch.float32]))
    A, lam = info.pop("A_attached"), info.pop("lam_attached")
    model = model_soft_argmax(index, A, fit[..., 0], fit[..., 1], lam, (height, width), window=window,
                              temperature=temperature, blur=blur,
                              dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    coords = torch.where(info["valid"][..., None], soft64 - model + fit, soft.to(torch.float64))
    info["fit"] = fit.detach()
    return coords, info


def model_soft_argmax(index: Tensor, A: Tensor, x: Tensor, y: Tensor, lam: Tensor, size, *, window: int,
                      temperature: float, blur: float, dtype: torch.dtype) -> Tensor:
    """The soft-argmax [..., K, 2] (float64) that decode's first stage gives on the fitted model:
    over the window x window box around `index` clipped to the frame, softmax(temperature * M) of
    the pre-filtered Gaussian M(i, j) = A By(i) Bx(j), By(i) = sum_d taps[d] exp(-lam (i + d - rf -
    y)^2) over the rows i + d - rf inside the frame (the pre-filter's zero border), the taps and M
    rounded to `dtype` as the kernels hold them. Differentiable in (A, x, y, lam)."""
    height, width = size
    r = window // 2
    mi, mj = index // width, index % width
    off = torch.arange(-r, r + 1, device=index.device)
    rows, cols = mi[..., None] + off, mj[..., None] + off
    iy, ix = (rows >= 0) & (rows < height), (cols >= 0) & (cols < width)
    taps = prefilter_taps(blur).to(dtype).to(torch.float64).to(index.device)  # as the kernels hold them
    by = _blurred_axis_tables(rows.to(torch.float64), y, lam, iy.to(torch.float64), taps, height)["k"]
    bx = _blurred_axis_tables(cols.to(torch.float64), x, lam, ix.to(torch.float64), taps, width)["k"]
    M = (A[..., None, None] * by[..., :, None] * bx[..., None, :]).to(dtype).to(torch.float64)
    inside = iy[..., :, None] & ix[..., None, :]
    p = torch.softmax((temperature * M).masked_fill(~inside, float("-inf")).flatten(-2), -1).unflatten(-1, M.shape[-2:])
    o = off.to(torch.float64)
    return torch.stack([mj.to(torch.float64) + (p.sum(-2) * o).sum(-1), mi.to(torch.float64) + (p.sum(-1) * o).sum(-1)],
                       -1)


def prefilter_taps(blur: float, dtype=torch.float64) -> Tensor:
    """The pre-filter's taps (filters.gaussian_blur, csrc gaussian_taps): radius ceil(3 blur)."""
    r = int(math.ceil(3 * blur))
    t = torch.arange(-r, r + 1, dtype=dtype)
    k = torch.exp(-(t * t) / (2 * blur * blur))
    return k / k.sum()


def start_width(F: Tensor, index: Tensor, blur: float | None, fallback: float) -> Tensor:
    """The fit's starting lam = 1 / (2 s^2), from the curvature of log F at its argmax: per axis the
    second difference of log F over three pixels around the argmax (shifted inward at the edge)
    is -1 / sF^2 for a Gaussian of std sF, and a Gaussian of std s pre-filtered by one of std b has
    sF^2 = s^2 + b^2 (filters.gaussian_blur, away from the edge). s^2 = mean over the axes of
    sF^2, minus b^2, clamped to [b^2 / 16, 16 b^2] (fallback^2 where no axis has 3 pixels or F is
    not positive there). Without the pre-filter, b = 0 and F = h."""
    height, width = F.shape[-2:]
    b2 = 0.0 if blur is None else blur * blur
    ref2 = fallback * fallback
    mi, mj = index // width, index % width
    flat = F.flatten(-2)
    inv = []
    for m, n, stride in ((mj, width, 1), (mi, height, width)):
        if n < 3:
            continue
        c = m.clamp(1, n - 2)  # the centre of the three pixels
        base = index + (c - m) * stride
        v = [flat.gather(-1, (base + o * stride)[..., None]).squeeze(-1) for o in (-1, 0, 1)]
        ok = (v[0] > 0) & (v[1] > 0) & (v[2] > 0)
        d = torch.log(torch.where(ok, v[0], torch.ones_like(v[0]))) - 2 * torch.log(
            torch.where(ok, v[1], torch.ones_like(v[1]))) + torch.log(torch.where(ok, v[2], torch.ones_like(v[2])))
        inv.append(torch.where(ok & (d < 0), -1.0 / d, torch.full_like(d, float("nan"))))  # sF^2, NaN if unusable
    if not inv:
        return torch.full(index.shape, 1.0 / (2.0 * ref2), dtype=F.dtype, device=F.device)
    sf2 = torch.stack(inv, -1).nanmean(-1)
    s2 = torch.where(torch.isfinite(sf2), sf2 - b2, torch.full_like(sf2, ref2))
    lo, hi = (ref2 / 16, ref2 * 16)
    return 1.0 / (2.0 * s2.clamp(lo, hi))


def _fit_coords(h64: Tensor, index: Tensor, soft: Tensor, r: int, s0: float, max_iterations: int,
                filtered_blur: float | None = None, start_lam: Tensor | None = None, stop: float = 1e-12):
    """The fit's coordinates and info. filtered_blur (a rejected variant, for benchmarks/edge_decoders.py):
    fit the pre-filtered map with the pre-filtered model instead of the raw map with the Gaussian."""
    height, width = h64.shape[-2:]
    if filtered_blur is None:
        S, rows, cols, iy, ix = _window(h64, index, r)
        ty_fn = lambda c, lam: _axis_tables(rows, c, lam, iy)  # noqa: E731
        tx_fn = lambda c, lam: _axis_tables(cols, c, lam, ix)  # noqa: E731
    else:
        taps = prefilter_taps(filtered_blur).to(h64.device)
        S, rows, cols, iy, ix = _window(gaussian_blur(h64, filtered_blur), index, r)
        ty_fn = lambda c, lam: _blurred_axis_tables(rows, c, lam, iy, taps, height)  # noqa: E731
        tx_fn = lambda c, lam: _blurred_axis_tables(cols, c, lam, ix, taps, width)  # noqa: E731
    x0, y0 = soft[..., 0].detach().to(torch.float64), soft[..., 1].detach().to(torch.float64)
    lam_ref = 1.0 / (2.0 * s0 * s0)
    lam0 = torch.full_like(x0, lam_ref) if start_lam is None else start_lam
    A, x, y, lam, step, frozen, iterations = fit_gaussian(S.detach(), rows, cols, iy, ix, x0, y0, lam0,
                                                  max_iterations=max_iterations, ty_fn=ty_fn, tx_fn=tx_fn, stop=stop)
    mi, mj = (index // h64.shape[-1]).to(torch.float64), (index % h64.shape[-1]).to(torch.float64)
    valid = (torch.isfinite(A) & torch.isfinite(x) & torch.isfinite(y) & torch.isfinite(lam) & (A > 0)
             & (lam > lam_ref / 100) & (lam < lam_ref * 100) & (step < CONVERGED)
             & ((x - mj).abs() <= r + 0.5) & ((y - mi).abs() <= r + 0.5))
    # Safe values where the fit is not used (so that the gradient terms stay finite).
    A = torch.where(valid, A, torch.ones_like(A))
    x, y, lam = torch.where(valid, x, mj), torch.where(valid, y, mi), torch.where(valid, lam, lam0)
    fit = torch.stack([x, y], -1)
    if S.requires_grad:
        # Implicit-function gradient: phi + (Hs^-1 J^T S - stop_grad(.)), J at the solution.
        with torch.no_grad():
            ty, tx = ty_fn(y, lam), tx_fn(x, lam)
            Hs = objective_hessian(S, ty, tx, A)
            free = torch.cat([torch.ones_like(frozen[..., :1]), ~frozen], -1).to(S.dtype)
            eye = torch.eye(4, dtype=S.dtype, device=S.device)
            Hs = Hs * free[..., :, None] * free[..., None, :] + eye * (1 - free[..., :, None])
            Hs = torch.where(valid[..., None, None], Hs, eye)
            Hinv, status = torch.linalg.inv_ex(Hs)
            Hinv = torch.where((status == 0)[..., None, None], Hinv, torch.zeros_like(Hinv))
            Hinv = Hinv * free[..., :, None]  # frozen parameters get no gradient
        jh = _data_terms(S, ty, tx, A)  # linear in S, J fixed
        dphi = (Hinv @ jh[..., None])[..., 0]
        dphi = dphi - dphi.detach()  # zero, with the fit's gradient
        fit, A_att, lam_att = fit + dphi[..., 1:3], A + dphi[..., 0], lam + dphi[..., 3]
    else:
        A_att, lam_att = A, lam
    return fit, dict(valid=valid, A=A, lam=lam, step=step, iterations=iterations, A_attached=A_att,
                     lam_attached=lam_att)


__all__ = ["refine", "fit_gaussian", "fit_radius", "objective_hessian", "MAX_ITERATIONS", "CONVERGED"]
