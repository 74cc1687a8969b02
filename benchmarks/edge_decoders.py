"""Candidates for the edge-exact SHR decoder (issue 13, item 3) against the default before it (the
soft-argmax of the pre-filtered maps, "default (today)" below), DARK and UDP, per distance to the
frame edge (docs/edge_exact_decoder.md has a run of this script). The chosen candidate, "LSQ fit,
13x13", is now shr_ops' default decoder (reference.decode, shr_ops/gaussian_fit.py).

    PYTHONPATH=.:python python benchmarks/edge_decoders.py            (64x64, sigma 1.5 / 2 / 3)
    PYTHONPATH=.:python python benchmarks/edge_decoders.py --sizes 32 128 --sigmas 2
    PYTHONPATH=.:python python benchmarks/edge_decoders.py --quick    (a small run)

Landmarks: `--points` with one coordinate at a distance d ~ U[0, 3) from the outermost pixel centre
of a random side (x = d or x = W - 1 - d), the other uniform where it is no nearer to an edge, and
`--points` / 2 in the interior, both coordinates in [3, S - 4]. Bins: d in [0, 1), [1, 2), [2, 3)
and the interior (> 3), as issue 13 states the targets (the codec study's bins measure the distance
to the frame edge, x + 0.5, instead: its 0.5-1 bin is 0-0.5 here). Conditions are the codec study's
(python/shr_fan/codec_study.py, `degrade`): clean, noise N(0, 0.05^2), network (amplitude U(0.5, 1),
blurred by 0.5 sigma with a zero border, + N(0, 0.03^2)); plus network-exact: the same, but the wider
Gaussian rendered exactly (amplitude x encode(sigma' = sqrt(sigma^2 + (sigma / 2)^2)) + noise), so the
map itself is not pulled inward near the edge as the zero-border blur of `network` pulls it.

Each table cell: mean / max Euclidean error in heatmap px. The cost table times each decoder (the
pure-PyTorch reference implementations, one thread) on the same maps.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch
from torch import Tensor

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."), os.path.join(os.path.dirname(__file__), "..", "python")]

from shr_ops import codecs, reference  # noqa: E402
from shr_ops.defaults import DEFAULT_BLUR, DEFAULT_TEMPERATURE, DEFAULT_WINDOW  # noqa: E402
from shr_ops.gaussian_fit import _fit_coords, _window, fit_radius, fit_gaussian  # noqa: E402
from shr_ops.filters import gaussian_blur  # noqa: E402
from shr_fan.codec_study import degrade  # noqa: E402

BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 3.0))
CONDITIONS = ("clean", "noise", "network", "network-exact")

# ------------------------------------------------------------------------------------ candidates


def prefit(h: Tensor) -> Tensor:
    """The default decoder before the fit: the soft-argmax of the pre-filtered maps."""
    return reference.prefiltered_soft_argmax(h)[1]


def decode_fit(h: Tensor, radius: int | None = None, return_info: bool = False):
    """The chosen fit (shr_ops' default decoder), with its box radius overridden by `radius`."""
    c, _, info = reference.decode_with_info(h, radius=radius)
    return (c, info) if return_info else c



def normalised_blur(h: Tensor, blur: float) -> Tensor:
    """The pre-filter renormalised at the border: each output the weighted mean of the taps inside
    the frame (a convex combination: the CPU search's row/column bounds still hold)."""
    ones = torch.ones(h.shape[-2:], dtype=h.dtype)
    return gaussian_blur(h, blur) / gaussian_blur(ones, blur)


def soft_argmax(F: Tensor, window: int, temperature: float, symmetric: bool = False) -> Tensor:
    """Today's window soft-argmax on the filtered maps F; with `symmetric`, the window radius on each
    axis shrunk to keep the window symmetric about the argmax inside the frame."""
    if not symmetric:
        return reference.decode_with_index(F, window=window, temperature=temperature)[0]
    H, W = F.shape[-2:]
    idx = F.flatten(-2).argmax(-1)
    mi, mj = idx // W, idx % W
    r = window // 2
    ry = torch.minimum(torch.minimum(mi, H - 1 - mi), torch.tensor(r))
    rx = torch.minimum(torch.minimum(mj, W - 1 - mj), torch.tensor(r))
    off = torch.arange(-r, r + 1)
    rows, cols = mi[..., None] + off, mj[..., None] + off
    iny = (off.abs() <= ry[..., None])
    inx = (off.abs() <= rx[..., None])
    fi = rows.clamp(0, H - 1)[..., :, None] * W + cols.clamp(0, W - 1)[..., None, :]
    v = F.flatten(-2).gather(-1, fi.flatten(-2)).double()
    inside = (iny[..., :, None] & inx[..., None, :]).flatten(-2)
    p = torch.softmax((temperature * v).masked_fill(~inside, float("-inf")), -1)
    n = off.numel()
    dx = off.double()[None, :].expand(n, n).flatten()
    dy = off.double()[:, None].expand(n, n).flatten()
    return torch.stack([mj + (p * dx).sum(-1), mi + (p * dy).sum(-1)], -1)


def log_quadratic_fit(h: Tensor, window: int, blur: float, iterations: int = 0, on_filtered: bool = False) -> Tensor:
    """Weighted least squares of log h as a quadratic (1, u, v, u^2, v^2) over the window around the
    filtered argmax (Guo 2011): weights h^2 (the data's), then `iterations` refits weighted by the
    fitted model^2. Exact for a clean Gaussian however the window is clipped; log of noisy data."""
    h = h.double()
    F = gaussian_blur(h, blur)
    src = normalised_blur(h, blur) if on_filtered else h
    idx = F.flatten(-2).argmax(-1)
    S, rows, cols, iy, ix = _window(src, idx, window // 2)
    H, W = h.shape[-2:]
    mi, mj = (idx // W).double(), (idx % W).double()
    u = (cols - mj[..., None])[..., None, :].expand(S.shape)
    v = (rows - mi[..., None])[..., :, None].expand(S.shape)
    inside = iy[..., :, None] * ix[..., None, :]
    pos = (S > 1e-6 * S.flatten(-2).amax(-1)[..., None, None]) & (inside > 0)
    L = torch.log(torch.where(pos, S, torch.ones_like(S)))
    basis = torch.stack([torch.ones_like(u), u, v, u * u, v * v], -1).flatten(-3, -2)  # [..., n*n, 5]
    w = torch.where(pos, S, torch.zeros_like(S)) ** 2
    Lf = L.flatten(-2)
    for it in range(iterations + 1):
        wf = w.flatten(-2)
        A = torch.einsum("...pa,...p,...pb->...ab", basis, wf, basis) + 1e-12 * torch.eye(5, dtype=S.dtype)
        b = torch.einsum("...pa,...p,...p->...a", basis, wf, Lf)
        c = torch.linalg.solve(A, b[..., None])[..., 0]
        if it < iterations:
            w = (torch.exp(basis @ c[..., None])[..., 0].unflatten(-1, S.shape[-2:]) * pos) ** 2
    x = mj - c[..., 1] / (2 * c[..., 3])
    y = mi - c[..., 2] / (2 * c[..., 4])
    bad = ~(torch.isfinite(x) & torch.isfinite(y) & (c[..., 3] < 0) & (c[..., 4] < 0))
    soft = prefit(h)
    return torch.where(bad[..., None], soft.double(), torch.stack([x, y], -1))


def fixed_width_fit(h: Tensor, window: int, temperature: float, blur: float) -> Tensor:
    """The least-squares Gaussian fit with the width held at `blur` (a matched template; the
    amplitude and the centre are fitted): exact only when the map's sigma equals blur."""
    h = h.double()
    F = gaussian_blur(h, blur)
    soft, _, idx = reference.decode_with_index(F.float(), window=window, temperature=temperature)
    S, rows, cols, iy, ix = _window(h, idx, fit_radius(window, blur))
    lam0 = torch.full(idx.shape, 1 / (2 * blur * blur), dtype=torch.float64)
    x, y = soft[..., 0].double(), soft[..., 1].double()
    A, x, y, lam, step, _, _ = fit_gaussian(S, rows, cols, iy, ix, x, y, lam0, fit_width=False)
    return torch.stack([x, y], -1)


def filtered_model_fit(h: Tensor, window: int, temperature: float, blur: float) -> Tensor:
    """The least-squares fit of the pre-filtered map's window by the pre-filtered Gaussian (the
    zero-border filter modelled exactly, so also exact on clean maps): LSQ on filtered noise."""
    h = h.double()
    F = gaussian_blur(h, blur)
    soft, _, idx = reference.decode_with_index(F.float(), window=window, temperature=temperature)
    c, info = _fit_coords(h, idx, soft, fit_radius(window, blur), blur, 20, filtered_blur=blur)
    return torch.where(info["valid"][..., None], c, soft.to(torch.float64))


def candidates(sigma: float):
    """name -> (encoder, decoder(maps) -> coords). The SHR candidates take SHR-encoded maps."""
    w, t, b = DEFAULT_WINDOW, DEFAULT_TEMPERATURE, DEFAULT_BLUR
    k = codecs.blur_kernel_for(sigma)
    return {
        "default (today)": ("shr", prefit),
        "dark (mmpose)": ("shr", lambda h: codecs.decode_dark(h, blur_kernel=k)),
        "udp (mmpose)": ("udp", lambda h: codecs.decode_udp(h, blur_kernel=k)),
        "normalised pre-filter": ("shr", lambda h: soft_argmax(normalised_blur(h.double(), b), w, t)),
        "normalised + symmetric window": ("shr", lambda h: soft_argmax(normalised_blur(h.double(), b), w, t, True)),
        "log-quadratic fit (Guo, h^2)": ("shr", lambda h: log_quadratic_fit(h, w, b)),
        "log-quadratic fit, 3 reweightings": ("shr", lambda h: log_quadratic_fit(h, w, b, iterations=3)),
        "log-quadratic fit of normalised F": ("shr", lambda h: log_quadratic_fit(h, w, b, on_filtered=True)),
        "LSQ fit of F, filtered model, 13x13": ("shr", lambda h: filtered_model_fit(h, w, t, b)),
        "LSQ fit, width = blur, 13x13": ("shr", lambda h: fixed_width_fit(h, w, t, b)),
        "LSQ fit, 9x9": ("shr", lambda h: decode_fit(h, radius=w // 2)),
        "LSQ fit, 13x13 (chosen)": ("shr", lambda h: decode_fit(h)),
    }


# ------------------------------------------------------------------------------------ data


def edge_landmarks(n: int, size: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(landmarks [n + n // 2, 1, 2], distance of the nearest coordinate to the outermost pixel
    centre, interior mask): the module docstring's design."""
    d = 3.0 * torch.rand(n, generator=g, dtype=torch.float64)
    along = d + torch.rand(n, generator=g, dtype=torch.float64) * (size - 1 - 2 * d)
    across = torch.where(torch.rand(n, generator=g) < 0.5, d, size - 1 - d)
    swap = torch.rand(n, generator=g) < 0.5
    near = torch.stack([torch.where(swap, along, across), torch.where(swap, across, along)], -1)
    far = 3.0 + torch.rand(n // 2, 2, generator=g, dtype=torch.float64) * (size - 7)
    lm = torch.cat([near, far])[:, None, :]
    dist = torch.minimum(lm, size - 1 - lm).amin(-1).squeeze(-1)
    interior = torch.arange(len(lm)) >= n
    return lm, dist, interior


def maps_for(encoder: str, lm: Tensor, size: int, sigma: float, cond: str, seed: int) -> Tensor:
    """The maps of `cond` (module docstring) from `encoder`'s map; network-exact renders the exact
    wider Gaussian for every decoder (a network's output has no encoder's square or edge shift)."""
    g = torch.Generator().manual_seed(seed)
    if cond == "network-exact":
        wide = math.sqrt(sigma * sigma + (0.5 * sigma) ** 2)
        heat = reference.encode(lm, (size, size), wide)
        amp = 0.5 + 0.5 * torch.rand(*heat.shape[:-2], 1, 1, generator=g, dtype=heat.dtype)
        # `network` scales a map blurred by a normalised Gaussian, whose peak is sigma^2 / sigma'^2.
        noise = 0.03 * torch.randn(heat.shape, generator=g, dtype=heat.dtype)
        return (amp * heat * (sigma / wide) ** 2 + noise).float()
    enc = reference.encode if encoder == "shr" else codecs.encode_udp
    return degrade(enc(lm, (size, size), sigma), cond, sigma, g).float()


def bin_stats(err: Tensor, dist: Tensor, interior: Tensor) -> list[tuple[float, float]]:
    out = []
    for lo, hi in BINS:
        sel = (dist >= lo) & (dist < hi) & ~interior
        out.append((err[sel].mean().item(), err[sel].max().item()))
    out.append((err[interior].mean().item(), err[interior].max().item()))
    return out


def run(size: int, sigma: float, points: int, seed: int, names=None, conditions=CONDITIONS) -> dict:
    lm, dist, interior = edge_landmarks(points, size, torch.Generator().manual_seed(seed))
    results = {}
    for cond in conditions:
        cache = {}
        for name, (enc, fn) in candidates(sigma).items():
            if names and name not in names:
                continue
            key = "shr" if cond == "network-exact" else enc
            if key not in cache:
                cache[key] = maps_for(key, lm, size, sigma, cond, seed + 1)
            err = (fn(cache[key]).double() - lm).norm(dim=-1).squeeze(-1)
            results[(cond, name)] = bin_stats(err, dist, interior)
    return dict(results=results, counts=[int(((dist >= a) & (dist < b) & ~interior).sum()) for a, b in BINS]
                + [int(interior.sum())])


def fmt(v: float) -> str:
    return f"{v:.4f}" if v < 10 else f"{v:.1f}"


def print_tables(size: int, sigma: float, res: dict, conditions=CONDITIONS) -> None:
    c = res["counts"]
    print(f"\n### {size}x{size}, sigma = {sigma} (landmarks per bin: 0-1: {c[0]}, 1-2: {c[1]}, 2-3: {c[2]}, "
          f"> 3: {c[3]})")
    for cond in conditions:
        print(f"\n**{cond}** (mean / max, px)\n")
        print("| decoder | 0-1 | 1-2 | 2-3 | > 3 |")
        print("|---|---|---|---|---|")
        for (cnd, name), cells in res["results"].items():
            if cnd == cond:
                print(f"| {name} | " + " | ".join(f"{fmt(m)} / {fmt(x)}" for m, x in cells) + " |")


def interior_table(size: int, sigma: float, points: int, seed: int) -> None:
    """The codec study's main-table landmarks (uniform in [4, S - 5]): mean error and the paired
    difference to today's default (+- its standard error), for the decoders the issue compares."""
    from shr_fan.codec_study import random_landmarks
    lm = random_landmarks(points, size, torch.Generator().manual_seed(seed))
    names = ("default (today)", "dark (mmpose)", "udp (mmpose)", "LSQ fit, 9x9", "LSQ fit, 13x13 (chosen)")
    cand = candidates(sigma)
    print(f"\n### Away from the edge: {points} landmarks uniform in [4, {size - 5}], {size}x{size}, sigma = {sigma}\n")
    print("mean error px (paired difference to today's default +- its standard error)\n")
    print("| decoder | " + " | ".join(CONDITIONS) + " |")
    print("|---|" + "---|" * len(CONDITIONS))
    errs = {}
    for cond in CONDITIONS:
        for name in names:
            enc, fn = cand[name]
            m = maps_for("shr" if cond == "network-exact" else enc, lm, size, sigma, cond, seed + 1)
            errs[(cond, name)] = (fn(m).double() - lm).norm(dim=-1).squeeze(-1)
    for name in names:
        cells = []
        for cond in CONDITIONS:
            e, d = errs[(cond, name)], errs[(cond, name)] - errs[(cond, names[0])]
            cells.append(f"{e.mean():.5f}" if name == names[0] else
                         f"{e.mean():.5f} ({d.mean():+.5f} +- {d.std() / len(d) ** 0.5:.5f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    d = errs[("noise", names[-1])] - errs[("noise", "dark (mmpose)")]
    print(f"\nchosen - DARK on noise: {d.mean():+.5f} +- {d.std() / len(d) ** 0.5:.5f} px")


def cost(size: int = 64, n: int = 2048, repeats: int = 3) -> None:
    """Time per map of the reference implementations (one thread), today's default against the fit."""
    lm = 2 + torch.rand(n, 1, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * (size - 5)
    h = (reference.encode(lm, (size, size), 2.0) + 0.05 * torch.randn(n, 1, size, size, dtype=torch.float64)).float()
    rows = {"default before the fit (soft-argmax of the pre-filtered maps)": lambda: prefit(h),
            "fit (reference.decode)": lambda: decode_fit(h),
            "fit, forward + backward": None}
    print(f"\n### Cost of the pure-PyTorch prototypes ({size}x{size}, {n} maps, float32, "
          f"{torch.get_num_threads()} thread)\n")
    print("| decoder | ms per 1000 maps |")
    print("|---|---|")
    for name, fn in rows.items():
        if fn is None:
            def fn():
                x = h.clone().requires_grad_(True)
                decode_fit(x).sum().backward()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        print(f"| {name} | {best / n * 1e6:.1f} |")
    _, info = decode_fit(h, return_info=True)
    it = info["iterations"].double()
    print(f"\nfit used on {info['valid'].float().mean().item() * 100:.2f} % of these noisy maps; Levenberg-Marquardt "
          f"iterations {it.mean():.2f} on average, at most {int(it.max())} (float32 maps: stop at a step < 1e-7 px)")
    clean = reference.encode(lm, (size, size), 2.0).float()
    it = decode_fit(clean, return_info=True)[1]["iterations"].double()
    print(f"clean maps: {it.mean():.2f} iterations on average, at most {int(it.max())}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64])
    p.add_argument("--sigmas", type=float, nargs="+", default=[1.5, 2.0, 3.0])
    p.add_argument("--points", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    p.add_argument("--conditions", nargs="*", default=list(CONDITIONS))
    p.add_argument("--no-cost", action="store_true")
    p.add_argument("--interior-points", type=int, default=8000, help="landmarks of the interior table (0: none)")
    p.add_argument("--quick", action="store_true", help="200 points, 64x64, sigma 2")
    a = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if a.quick:
        a.sizes, a.sigmas, a.points, a.interior_points = [64], [2.0], 200, 400
    for size in a.sizes:
        for sigma in a.sigmas:
            t0 = time.time()
            res = run(size, sigma, a.points, a.seed, a.only, a.conditions)
            print_tables(size, sigma, res, a.conditions)
            if a.interior_points:
                interior_table(size, sigma, a.interior_points, a.seed)
            print(f"\n({time.time() - t0:.0f} s)")
    if not a.no_cost:
        cost()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
