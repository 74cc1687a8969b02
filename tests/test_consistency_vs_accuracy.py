"""benchmarks/consistency_vs_accuracy.py on small ablation.json files written here: the line is
fitted on the rows without a consistency term only, a row's residual is its seeds' mean and sd
of (consistency - line), and rows of other decoders, the mean shape and a row given twice are
handled as its docstring says."""
import json

import pytest

from conftest import benchmark_script


@pytest.fixture(scope="module")
def cva():
    return benchmark_script("consistency_vs_accuracy", "shr_cons_vs_acc")


def _row(label, nmes, offsets=(0, 0, 0), decoder="shr", key="k"):
    # consistency = 0.01 + 0.5 NME on both sets, plus the offsets
    per_seed = []
    for n, o in zip(nmes, offsets):
        seed = {}
        for s, f in (("test", 1), ("hard", 2)):
            seed[f"{s}/nme"], seed[f"{s}/consistency"] = n * f, 0.01 + 0.5 * n * f + o
        per_seed.append(seed)
    return dict(row=label, key=key, decoder=decoder, per_seed=per_seed)


def test_residuals_against_the_line_of_the_rows_without_a_term(cva, tmp_path, capsys):
    a = tmp_path / "a.json"
    a.write_text(json.dumps([
        _row("SHR encode only", [0.05, 0.06, 0.07], offsets=(0.5, 0.5, 0.5), decoder="hrnet"),  # another decoder
        _row("SHR encode + decode", [0.05, 0.06, 0.07]),
        _row("mean shape (no model)", [0.3, 0.3, 0.3], key=None)]))
    b = tmp_path / "b.json"
    b.write_text(json.dumps([
        _row("SHR + Siamese (heatmap, λ 0, pairing half)", [0.055, 0.065, 0.04]),
        _row("SHR + Siamese (heatmap, λ 0.1, stop-grad)", [0.05, 0.06, 0.07], offsets=(-0.004, -0.006, -0.005))]))
    assert cva.main([str(a), str(b), "--png", str(tmp_path / "fig.png")]) == 0
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0][2:]: line for line in out.splitlines() if line.startswith("| SHR")}
    assert list(rows) == ["SHR encode + decode", "SHR + Siamese (heatmap, λ 0, pairing half)",
                          "SHR + Siamese (heatmap, λ 0.1, stop-grad)"]  # the other decoder and the mean shape: out
    assert "| no | 6.000 | 4.000 | +0.000 ± 0.000 |" in rows["SHR encode + decode"]
    assert "| yes | 6.000 | 3.500 | -0.500 ± 0.100 | 12.000 | 6.500 | -0.500 ± 0.100 |" in rows[
        "SHR + Siamese (heatmap, λ 0.1, stop-grad)"]
    assert "test: consistency = 1.000 + 0.500 NME (%); hard: consistency = 1.000 + 0.500 NME (%)" in out
    assert (tmp_path / "fig.png").stat().st_size > 10_000
    _, fitted = cva.residuals(cva.load_rows([str(a), str(b)]))
    assert [r["term"] for r in fitted] == [False, False, True]
    assert [r["row"] for r in cva.load_rows([str(a), str(b)], leave_out=("λ 0.1",))] == [
        "SHR encode + decode", "SHR + Siamese (heatmap, λ 0, pairing half)"]


def test_refusals(cva, tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps([_row("SHR encode + decode", [0.05, 0.05, 0.05]),
                             _row("SHR + Siamese (heatmap, λ 0.1, stop-grad)", [0.04, 0.05, 0.06])]))
    with pytest.raises(SystemExit, match="at least two NMEs without a consistency term"):
        cva.main([str(a)])
    with pytest.raises(SystemExit, match="is also in"):
        cva.main([str(a), str(a)])


def test_the_weight_field_decides_a_term_and_old_files_use_the_label(cva, tmp_path):
    rows = [_row("SHR encode + decode", [0.05, 0.06, 0.07]), _row("control", [0.05, 0.06, 0.08]),
            _row("SHR + Siamese (heatmap, λ 0.5)", [0.05, 0.06, 0.07]), _row("term", [0.05, 0.06, 0.07])]
    for r, w in zip(rows, (0.0, 0.0, 0.0, 0.5)):
        r["consistency_weight"] = w  # a label is not read where the field is: "λ 0.5" here has weight 0
    new = tmp_path / "new.json"
    new.write_text(json.dumps(rows))
    assert [r["term"] for r in cva.load_rows([str(new)])] == [False, False, False, True]
    for r in rows:
        del r["consistency_weight"]  # a file written before the field: the label's λ
    old = tmp_path / "old.json"
    old.write_text(json.dumps(rows))
    assert [r["term"] for r in cva.load_rows([str(old)])] == [False, False, True, False]
