"""Does a consistency term buy more transform consistency than its row's accuracy gives? (issue 16)

Across the models of `shr-fan ablation` tables, the transform-consistency error falls with the
NME: a more accurate model is also more consistent, term or not. So a row's consistency column
alone cannot say whether its term did what it exists for. This script fits the relation on the
models trained without a consistency term (SHR encode + decode and the lambda-0 controls: a row's
`consistency_weight` 0 in ablation.json, or its label's `λ 0` in files written before that field),
a straight line consistency = a + b NME per test set by least squares over
every seed's model, and gives each row's residual: the mean +- sd over its seeds of (its
consistency - the line at its NME). A term that makes the heatmaps consistent beyond what accuracy
gives puts its row below the line (a negative residual beyond its spread); a residual level with 0
says that the term moved the row along the line at most.

Usage:
    python benchmarks/consistency_vs_accuracy.py OUT/ablation.json [OUT2/ablation.json ...] \
        [--png FIGURE] [--leave-out TEXT ...]

Only rows decoded by SHR's decoder count (the consistency depends on the decoder); the mean-shape
row is left out. Several files must come from one session's machine: their rows are pooled (a row
label in two files is refused).
"""
from __future__ import annotations

import argparse
import json
import re
import sys

import numpy as np

SETS = ("test", "hard")


def load_rows(paths: list[str], leave_out: tuple[str, ...] = ()) -> list[dict]:
    """The rows decoded by SHR of the ablation.json files, each {row, term, nme: {set: [per seed]},
    consistency: {set: [...]}} (term: the row has a consistency term, weight > 0); rows whose label
    contains a text of `leave_out` are left out."""
    rows, seen = [], {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for r in data:
            if r.get("key") is None or r.get("decoder") != "shr" or any(t in r["row"] for t in leave_out):
                continue
            if r["row"] in seen:
                raise SystemExit(f"{path}: the row {r['row']!r} is also in {seen[r['row']]}; give each row once")
            seen[r["row"]] = path
            if "consistency_weight" in r:
                term = r["consistency_weight"] > 0
            else:  # an ablation.json written before the field (docs/data/siamese16_half1600_ablation.json)
                weight = re.search(r"λ ([0-9.eE+-]+)", r["row"])
                term = weight is not None and float(weight.group(1)) > 0
            rows.append(dict(row=r["row"], term=term,
                             nme={s: [p[f"{s}/nme"] for p in r["per_seed"]] for s in SETS},
                             consistency={s: [p[f"{s}/consistency"] for p in r["per_seed"]] for s in SETS}))
    return rows


def fit_line(rows: list[dict], which: str) -> tuple[float, float]:
    """(a, b) of consistency = a + b NME on the test set `which`, over every model of the rows
    without a consistency term."""
    x = [v for r in rows if not r["term"] for v in r["nme"][which]]
    y = [v for r in rows if not r["term"] for v in r["consistency"][which]]
    if len(set(x)) < 2:
        raise SystemExit("the line needs models of at least two NMEs without a consistency term (SHR encode + decode "
                         "and a λ 0 row, or several seeds)")
    b, a = np.polyfit(np.array(x), np.array(y), 1)
    return float(a), float(b)


def residuals(rows: list[dict]) -> tuple[dict, list[dict]]:
    """({set: (a, b)}, every row with `residual`: {set: (mean, sd)} over its seeds, in % points)."""
    lines = {s: fit_line(rows, s) for s in SETS}
    out = []
    for r in rows:
        res = {}
        for s, (a, b) in lines.items():
            d = np.array(r["consistency"][s]) - (a + b * np.array(r["nme"][s]))
            res[s] = (100 * float(d.mean()), 100 * float(d.std(ddof=1)) if len(d) > 1 else float("nan"))
        out.append(dict(r, residual=res))
    return lines, out


def markdown(lines: dict, rows: list[dict]) -> str:
    head = ("| row | term | NME % | consistency % | residual % | hard NME % | hard consistency % | hard residual % |\n"
            "|---|---|---|---|---|---|---|---|")
    body = []
    for r in rows:
        cells = []
        for s in SETS:
            cells += [f"{100 * np.mean(r['nme'][s]):.3f}", f"{100 * np.mean(r['consistency'][s]):.3f}",
                      f"{round(r['residual'][s][0], 3) + 0:+.3f} ± {r['residual'][s][1]:.3f}"]
        body.append(f"| {r['row']} | {'yes' if r['term'] else 'no'} | " + " | ".join(cells) + " |")
    fits = "; ".join(f"{s}: consistency = {100 * a:.3f} + {b:.3f} NME (%)" for s, (a, b) in lines.items())
    return "\n".join([head] + body) + f"\n\nLines fitted on the rows without a term: {fits}.\n"


def plot(lines: dict, rows: list[dict], path: str) -> str:
    from shr_fan.plots import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, s in zip(axes, SETS):
        for i, r in enumerate(rows):
            ax.scatter(100 * np.array(r["nme"][s]), 100 * np.array(r["consistency"][s]), s=28,
                       marker="o" if not r["term"] else "^", color=plt.cm.tab10(i % 10), label=r["row"])
        a, b = lines[s]
        x = np.array([min(v for r in rows for v in r["nme"][s]), max(v for r in rows for v in r["nme"][s])])
        ax.plot(100 * x, 100 * (a + b * x), "k--", lw=1, label="fit to the rows without a term")
        ax.set_xlabel(f"{s} NME %")
        ax.set_ylabel(f"{s} transform consistency %")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6.5, loc="upper left")
    fig.suptitle("Transform consistency against NME, every seed's model (triangles: rows with a consistency term)")
    return save(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ablation", nargs="+", help="OUT/ablation.json of shr-fan ablation")
    p.add_argument("--png", default=None, help="also write the scatter figure here (the table is printed as markdown)")
    p.add_argument("--leave-out", nargs="+", default=[], metavar="TEXT",
                   help="leave out the rows whose label contains one of these (e.g. a collapsed row far outside "
                        "the others' NME, where the line would be extrapolated)")
    args = p.parse_args(argv)
    lines, rows = residuals(load_rows(args.ablation, tuple(args.leave_out)))
    print(markdown(lines, rows))
    if args.png:
        print(f"wrote {plot(lines, rows, args.png)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
