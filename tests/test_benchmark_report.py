"""benchmarks/report.py on a small pytest-benchmark JSON written here: the ratios, the targets'
verdicts and the written docs page come out of the figures given, and benchmarks of other
suites in the same file (the data pipeline's, which carry no impl) are left out."""
import json
import sys

import pytest

from conftest import benchmark_script


@pytest.fixture(scope="module")
def report():
    return benchmark_script("report", "shr_bench_report")


def _bench(suite, group, impl, median, device="cpu", b=32, k=68, **extra):
    info = dict(device=device, B=b, K=k, size=64, impl=impl, **extra)
    return {"fullname": f"benchmarks/{suite}::test[{impl}]", "group": group, "extra_info": info,
            "stats": {"median": median}}


def _write(tmp_path):
    machine = dict(torch="2.x", device_name=None, threads=2)
    ops = "test_bench_ops.py"
    benchmarks = [
        _bench(ops, "cpu B=32", "fill", 1e-3, **machine),
        _bench(ops, "cpu B=32", "alloc_fill", 4e-3, **machine),
        _bench(ops, "cpu B=32", "encode_out", 1.5e-3, **machine),
        _bench(ops, "cpu B=32", "encode", 5e-3, **machine),
        _bench(ops, "cpu B=32", "ref_encode", 30e-3, **machine),
        _bench(ops, "cpu B=32", "decode_default", 2.5e-3, **machine),
        # timed alternately with its own fill: its ratios use those, not the group's fill
        _bench(ops, "cpu B=32", "decode", 3e-3, paired={"fill": 2e-3, "alloc_fill": 6e-3}, **machine),
        _bench(ops, "cpu per image", "shr", 5e-3, b=1, k=98, calls=10, **machine),  # 10 calls a round
        _bench(ops, "cpu per image", "numpy_quarter", 4e-3, b=1, k=98, **machine),
        _bench(ops, "cpu per image", "numpy_dark", 12e-3, b=1, k=98, **machine),
        _bench("test_bench_loss.py", "loss cpu B=32", "fill", 2e-3),
        _bench("test_bench_loss.py", "loss cpu B=32", "fused", 8e-3),
        _bench("test_bench_loss.py", "loss cpu B=32", "encode_mse", 32e-3),
        {"fullname": "benchmarks/test_bench_data.py::test_render_face_256", "group": None, "extra_info": {},
         "stats": {"median": 1e-3}},
    ]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": benchmarks, "machine_info": {"cpu": {"count": 2}},
                                "datetime": "2026-01-01T00:00:00"}))
    return path


def test_report_ratios_and_targets(report, tmp_path):
    data, groups, info = report.load(str(_write(tmp_path)))
    assert set(info) == {"cpu"} and len(groups) == 2  # the loss and data benchmarks are not in the ops table
    rows = "\n".join(report.table(groups))
    assert "| encode (into an existing buffer, out=) | B=32 K=68 64x64 | cpu | 1.50 ms | 1.50 | 0.38 | - | 0.05 | - |" in rows
    assert "| encode (new tensor) | B=32 K=68 64x64 | cpu | 5.00 ms | 5.00 | 1.25 | - | 0.17 | - |" in rows
    assert "| encode + decode per image, one thread | K=98 64x64 | cpu | 500.0 us | - | - | - | 0.12 | - |" in rows
    targets = "\n".join(report.target_lines(groups))
    assert "| cpu | encode into a buffer <= 2 x fill | 1.50 x | yes |" in targets
    assert "| cpu | encode, new tensor <= 2 x fill | 5.00 x | no |" in targets
    assert "| cpu | decode (defaults, fused blur) <= 2 x fill | 2.50 x | no |" in targets
    assert "| cpu | decode (blur=None) <= 2 x fill | 1.50 x | yes |" in targets
    assert "| decode (kernel, blur=None) | B=32 K=68 64x64 | cpu | 3.00 ms | 1.50 | 0.50 | - | - | - |" in rows
    assert "| cpu | per image >= 20 x faster than numpy (quarter) | 8.0 x faster | no |" in targets
    assert "| cpu | per image >= 20 x faster than numpy (DARK) | 24.0 x faster | yes |" in targets
    assert "| cuda | encode <= 1.10 x fill | not measured | - |" in targets


def test_report_writes_the_page(report, tmp_path, monkeypatch):
    bench = _write(tmp_path)
    notes = tmp_path / "notes.md"
    notes.write_text("- a note on the machine")
    train = tmp_path / "train.json"
    rows = [dict(mode="step", targets=v, median=m, best=m + 1, runs=[m - 1, m, m + 1], median_ratio=m / 20,
                 best_ratio=(m + 1) / 21) for v, m in (("encode", 20.0), ("fused", 25.0))]
    train.write_text(json.dumps(dict(header=["FAN tiny, crop 128"], rows=rows)))
    page = tmp_path / "performance.md"
    monkeypatch.setattr(sys, "argv", ["report.py", str(bench), "--notes", str(notes), "--train", str(train),
                                      "--write", str(page)])
    report.main()
    text = page.read_text()
    assert text.startswith("# Performance") and "- a note on the machine" in text
    assert "## Fused training loss" in text
    assert "| fused loss, forward + gradient | B=32 K=68 64x64 | cpu | 8.00 ms | 4.00 | 0.25 |" in text
    assert "**No GPU rows**" in text
    assert "## Training throughput" in text and "- FAN tiny, crop 128" in text
    assert "| step | fused | 25.00 | 26.00 | 24.00, 25.00, 26.00 | 1.250 | 1.238 |" in text


def test_report_keeps_other_scripts_sections(report, tmp_path, monkeypatch):
    page = tmp_path / "performance.md"
    owned = "<!-- kernel_resources:begin -->\n## CUDA kernel resources\n\n| a |\n<!-- kernel_resources:end -->"
    page.write_text(f"# Performance\n\nold figures\n\n{owned}\n\nmore old figures\n")
    monkeypatch.setattr(sys, "argv", ["report.py", str(_write(tmp_path)), "--write", str(page)])
    report.main()
    text = page.read_text()
    assert "old figures" not in text and "## Speed" in text
    assert text.count(owned) == 1 and text.index("## Speed") < text.index(owned)


def test_report_reads_several_files_as_one_run(report, tmp_path):
    """The benchmarks of two selections (as .ci/gpu-run times the torch.compile rows on their own)
    fill one table: the compiled reference's ratio comes from the second file; the machine and
    date are the first file's; the same benchmark in both files is refused."""
    first = _write(tmp_path)
    compiled = tmp_path / "compiled.json"
    compiled.write_text(json.dumps({"benchmarks": [
        _bench("test_bench_ops.py", "cpu B=32", "compiled_ref_encode", 3e-3, torch="2.x", device_name=None,
               threads=2)], "machine_info": {"cpu": {"count": 16}}, "datetime": "2026-02-02T00:00:00"}))
    data, groups, _ = report.load([str(first), str(compiled)])
    assert data["datetime"] == "2026-01-01T00:00:00"
    rows = "\n".join(report.table(groups))
    assert "| encode (into an existing buffer, out=) | B=32 K=68 64x64 | cpu | 1.50 ms | 1.50 | 0.38 | - | 0.05 | 0.50 |" in rows
    again = tmp_path / "again.json"
    again.write_text(first.read_text())
    with pytest.raises(SystemExit, match="in both"):
        report.load([str(first), str(again)])
