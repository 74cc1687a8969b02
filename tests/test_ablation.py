"""shr-fan ablation with paired seeds, a finite training set, the endless-stream row, learning curves,
and its statistics (mean ± sd per row, paired differences to SHR encode + decode)."""
import json
import math

import pytest
import torch

from shr_fan import cli
from shr_fan.ablation import REFERENCE, parse_variant, run_folder, statistics, table, variant_label
from shr_fan.errors import UserError


def _row(label, key, nmes, cons=None):
    cons = cons if cons is not None else nmes
    return dict(row=label, key=key, codec="shr", decoder="shr", seeds=list(range(len(nmes))),
                per_seed=[{"test/nme": n, "hard/nme": 2 * n, "test/consistency": c, "test/fr@0.1": 0.5,
                           "test/auc@0.1": 0.1, "hard/fr@0.1": 0.9, "hard/auc@0.1": 0.01, "hard/consistency": c,
                           "seconds": 10.0, "steps": 5} for n, c in zip(nmes, cons)])


def test_statistics_are_means_sds_and_paired_differences():
    rows = [_row(REFERENCE, "shr", [0.10, 0.20, 0.30]), _row("other", "x", [0.12, 0.21, 0.34], [0.1, 0.1, 0.1])]
    ref, other = statistics(rows)
    assert ref["mean"]["test/nme"] == pytest.approx(0.2) and ref["sd"]["test/nme"] == pytest.approx(0.1)
    # paired: the differences 0.02, 0.01, 0.04 (mean 0.07 / 3, sd 0.0152753), not the spread of the rows (~0.11)
    assert other["diff_mean"]["test/nme"] == pytest.approx(0.07 / 3)
    assert other["diff_sd"]["test/nme"] == pytest.approx(0.015275252, rel=1e-6)
    assert other["diff_mean"]["hard/nme"] == pytest.approx(2 * 0.07 / 3)
    assert other["diff_mean"]["test/consistency"] == pytest.approx(-0.1)
    text = table(rows)
    assert "| other | shr | shr | 22.333 ± 11.060 |" in text
    assert "| +2.333 ± 1.528 | +4.667 ± 3.055 | -10.000 ± 10.000 | 10 |" in text
    assert "(reference)" in text.splitlines()[2]
    rows = [dict(rows[0], reference=None), dict(_row("endless ref", "f", [0.04, 0.10, 0.30]), reference=REFERENCE),
            dict(_row("siamese endless", "s", [0.05, 0.15, 0.20]), reference="endless ref")]
    _, ref_e, siamese_e = statistics(rows)
    assert siamese_e["diff_mean"]["test/nme"] == pytest.approx((0.01 + 0.05 - 0.10) / 3)  # to its own data's row
    assert ref_e["diff_mean"]["test/nme"] == pytest.approx((-0.06 - 0.10 + 0.0) / 3)
    single = statistics([_row(REFERENCE, "shr", [0.1]), _row("other", "x", [0.3])])
    assert math.isnan(single[1]["diff_sd"]["test/nme"]) and single[1]["diff_mean"]["test/nme"] == pytest.approx(0.2)
    assert "| +20.000 |" in table([_row(REFERENCE, "shr", [0.1]), _row("other", "x", [0.3])])


def test_ablation_with_seeds_a_finite_set_the_endless_row_and_curves(tmp_path):
    torch.set_num_threads(1)
    report, figure, out = tmp_path / "results.md", tmp_path / "fig" / "curves.png", tmp_path / "runs"
    assert cli.main(["ablation", "--crop", "64", "--steps", "2", "--batch-size", "2", "--workers", "0",
                     "--device", "cpu", "--eval-n", "4", "--out", str(out), "--seeds", "0", "1",
                     "--train-faces", "4", "--endless-row", "--no-hrnet-rows", "--eval-every", "1",
                     "--eval-faces", "2", "--variants", "heatmap:0.1:stop=first:pair=half", "heatmap:0:endless",
                     "--curves", str(figure), "--report", str(report)]) == 0
    text = report.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert [r.split(" | ")[0][2:] for r in rows] == [
        "SHR encode only", "SHR encode + decode", "SHR encode + decode, endless stream",
        "SHR + Siamese (heatmap, λ 0.1, view 1 the fixed target, pairing half)",
        "SHR + Siamese (heatmap, λ 0, endless stream)", "mean shape (no model)"]
    assert all(" ± " in r for r in rows)  # two seeds: every measure with its sd
    assert "(reference)" in rows[1] and "standard error: sd / √2" in text and "4 training faces cycled" in text
    assert "![learning curves" in text and "fig/curves.png" in text and figure.stat().st_size > 10_000
    for seed in (0, 1):
        for run in ("shr", "shr-endless", "shr-siamese-heatmap-0.1-stop-first-pair-half"):
            assert (out / f"seed{seed}" / run / "curves.csv").exists()
    saved = json.loads((out / "ablation.json").read_text())
    endless, siamese_endless = saved[2], saved[4]  # the Siamese row on the endless stream: Δ to the endless row
    assert siamese_endless["reference"] == endless["row"] and endless["reference"] == REFERENCE
    assert siamese_endless["diff_mean"]["test/nme"] == pytest.approx(
        sum(a["test/nme"] - b["test/nme"] for a, b in zip(siamese_endless["per_seed"], endless["per_seed"])) / 2)
    assert saved[1]["row"] == REFERENCE and len(saved[1]["per_seed"]) == 2 and saved[1]["diff_mean"]["test/nme"] == 0
    # each row's consistency weight (0: no term), which benchmarks/consistency_vs_accuracy.py reads
    assert [r.get("consistency_weight") for r in saved] == [0.0, 0.0, 0.0, 0.1, 0.0, None]
    # the endless row's runs trained on other faces than the finite set's: other weights
    a = torch.load(out / "seed0" / "shr" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(out / "seed0" / "shr-endless" / "checkpoint.pt", weights_only=False)["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_parallel_runs_give_the_models_of_one_at_a_time(tmp_path, capfd):
    torch.set_num_threads(1)
    args = ["ablation", "--crop", "64", "--steps", "2", "--batch-size", "2", "--workers", "0", "--device", "cpu",
            "--eval-n", "4", "--seeds", "0", "1", "--train-faces", "4", "--no-hrnet-rows",
            "--variants", "heatmap:0.1:stop:pair=half"]
    assert cli.main(args + ["--out", str(tmp_path / "one")]) == 0
    assert cli.main(args + ["--out", str(tmp_path / "two"), "--parallel", "3"]) == 0
    one, two = (json.loads((tmp_path / d / "ablation.json").read_text()) for d in ("one", "two"))
    assert [r["row"] for r in one] == [r["row"] for r in two]
    for a, b in zip(one, two):
        for sa, sb in zip(a["per_seed"], b["per_seed"]):
            assert {k: v for k, v in sa.items() if k != "seconds"} == {k: v for k, v in sb.items() if k != "seconds"}
    for seed in (0, 1):
        for run in ("shr", "shr-siamese-heatmap-0.1-stop-pair-half"):
            a, b = (torch.load(tmp_path / d / f"seed{seed}" / run / "checkpoint.pt", weights_only=False)["model"]
                    for d in ("one", "two"))
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a run that fails in its process: its error as one line, then the table's, exit status 2
    bad = tmp_path / "bad" / "seed1" / "shr"
    bad.mkdir(parents=True)
    (bad / "checkpoint.pt").write_bytes(b"not a checkpoint")
    capfd.readouterr()
    assert cli.main(args + ["--out", str(tmp_path / "bad"), "--parallel", "2"]) == 2
    err = capfd.readouterr().err
    assert f"shr-fan ablation: error: {bad}: " in err and "Traceback" not in err, err
    assert f"shr-fan ablation: error: --parallel: the run in {bad} failed (exit status 2" in err, err
    assert not (tmp_path / "bad" / "ablation.json").exists()


def test_ablation_refuses_what_it_cannot_do(tmp_path, capsys):
    base = ["ablation", "--crop", "64", "--steps", "1", "--device", "cpu", "--out", str(tmp_path)]

    def fails(args, message):
        assert cli.main(base + args) == 2
        err = capsys.readouterr().err
        assert err.startswith("shr-fan ablation: error: ") and message in err, err

    fails(["--seed", "1", "--seeds", "0", "1"], "--seed and --seeds: give one")
    fails(["--seeds", "0", "0"], "--seeds 0 0: a seed given twice")
    fails(["--parallel", "0"], "--parallel 0: expected an integer > 0")
    fails(["--endless-row"], "--endless-row compares the endless stream with --train-faces N")
    fails(["--variants", "heatmap:1:endless"], "'endless' trains on the endless stream instead of --train-faces N")
    fails(["--train-faces", "8", "--variants", "heatmap:1:endless"], "add --endless-row")
    fails(["--curves", "c.png"], "--curves draws the runs' learning curves, which --eval-every N measures")
    fails(["--variants", "heatmap:1", "heatmap:1"], "--variants heatmap:1: the same row twice")
    fails(["--batch-size", "3", "--variants", "heatmap:1:pair=half"],
          "--variants heatmap:1:pair=half: --siamese-pairing half: --batch-size 3 must be even")
    fails(["--stop-gradient", "both"], "unrecognized arguments: --stop-gradient both")  # a variant's flag
    assert not any(tmp_path.iterdir())  # refused before any training


def test_variant_flags_parse_and_name_their_settings():
    fields = parse_variant("heatmap:0.1:stop=first:views=flip,rotation:strength=2:pair=half:endless")
    assert fields == dict(siamese=True, consistency="heatmap", consistency_weight=0.1, stop_gradient="first",
                          consistency_stacks="last", siamese_transforms="rotation,flip", siamese_strength=2.0,
                          siamese_pairing="half", train_faces=None)
    assert variant_label(fields) == ("SHR + Siamese (heatmap, λ 0.1, view 1 the fixed target, views differ in "
                                     "rotation+flip, strength 2, pairing half, endless stream)")
    assert parse_variant("heatmap:1")["stop_gradient"] == "none" and parse_variant("heatmap:1:stop")[
        "stop_gradient"] == "both"
    assert variant_label(parse_variant("coords:0.05:stop=second")) == \
        "SHR + Siamese (coords, λ 0.05, view 2 the fixed target)"
    assert run_folder("heatmap:0.1:stop=first:views=flip,rotation") == "shr-siamese-heatmap-0.1-stop-first-views-flip-rotation"
    for text, message in [("heatmap:0.1:stop=sideways", "stop=WHICH with WHICH one of none, both, first, second"),
                          ("heatmap:0.1:views=ears", "views=ears: expected a comma-separated list of scale, rotation, shift, "
                                                      "flip, colour (unknown 'ears')"),
                          ("heatmap:0.1:strength=9", "strength=K with K in (0, 5]"),
                          ("heatmap:0.1:pair=triple", "pair=WHICH with WHICH one of joint, separate, half"),
                          ("heatmap:0.1:stop:stop=first", "'stop=first' sets stop_gradient a second time"),
                          ("heatmap:0.1:warm2", "warmN with N in [0, 1]"),
                          ("heatmap:-1", "expected a WEIGHT >= 0"),
                          ("heatmap:0.1:views=", "unknown flag 'views='")]:
        with pytest.raises(UserError) as e:
            parse_variant(text)
        assert str(e.value).startswith(f"--variants {text}: ") and message in str(e.value), str(e.value)
