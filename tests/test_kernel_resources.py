"""benchmarks/kernel_resources.py's pure parts, without nvcc: ptxas's and cuobjdump's reports
(real output, excerpts in tests/data/), the kernel names, the dynamic shared memory of the launch
shapes, the sm_90 occupancy arithmetic on hand-checked cases, and the docs section's markers."""
import pathlib

import pytest

from conftest import benchmark_script

DATA = pathlib.Path(__file__).resolve().parent / "data"

# c++filt's names of the entries in ptxas_sm90.txt
DEMANGLED = {
    "_ZN7shr_ops4cuda13decode_kernelIffEEvPKT_PT0_S6_PliiiS5_":
        "void shr_ops::cuda::decode_kernel<float, float>(float const*, float*, float*, long*, int, int, int, float)",
    "_ZN7shr_ops4cuda16blur_pass_kernelIffLi16EEEvPKT_PT0_liibNS0_8HalfTapsIS5_XT1_EEE":
        "void shr_ops::cuda::blur_pass_kernel<float, float, 16>(float const*, float*, long, int, int, bool, "
        "shr_ops::cuda::HalfTaps<float, 16>)",
    "_ZN7shr_ops4cuda13encode_kernelIN3c104HalfEfEEvPKT0_PKbPT_iiS4_S4_":
        "void shr_ops::cuda::encode_kernel<c10::Half, float>(float const*, bool const*, c10::Half*, int, int, float, "
        "float)",
    "_Z12spill_kernelPKfPfi": "spill_kernel(float const*, float*, int)",
}


@pytest.fixture(scope="module")
def kr():
    return benchmark_script("kernel_resources", "shr_kernel_resources")


@pytest.fixture(scope="module")
def kernels(kr):
    return {k["mangled"]: k for k in kr.parse_ptxas((DATA / "ptxas_sm90.txt").read_text())}


def test_parse_ptxas(kernels):
    assert len(kernels) == 7
    decode = kernels["_ZN7shr_ops4cuda13decode_kernelIffEEvPKT_PT0_S6_PliiiS5_"]
    assert decode == dict(mangled=decode["mangled"], arch="sm_90", registers=34, barriers=1, static_smem=256,
                          constant=None, stack=0, spill_stores=0, spill_loads=0)
    blur = kernels["_ZN7shr_ops4cuda16blur_pass_kernelIffLi16EEEvPKT_PT0_liibNS0_8HalfTapsIS5_XT1_EEE"]
    assert (blur["registers"], blur["static_smem"], blur["stack"], blur["spill_stores"]) == (32, 0, 72, 0)
    encode = kernels["_ZN7shr_ops4cuda13encode_kernelIN3c104HalfEfEEvPKT0_PKbPT_iiS4_S4_"]
    assert (encode["registers"], encode["static_smem"]) == (26, 0)  # its shared memory is all dynamic
    spill = kernels["_Z12spill_kernelPKfPfi"]
    assert (spill["registers"], spill["stack"], spill["spill_stores"], spill["spill_loads"]) == (32, 624, 664, 748)


def test_parse_older_ptxas_constant_banks(kr):
    # the format of ptxas before 13, which printed the constant banks (written here, not captured)
    text = ("ptxas info    : Compiling entry function '_Z1kPf' for 'sm_90'\n"
            "ptxas info    : Used 13 registers, 256 bytes smem, 360 bytes cmem[0], 8 bytes cmem[2]\n")
    (k,) = kr.parse_ptxas(text)
    assert (k["registers"], k["static_smem"], k["constant"], k["barriers"], k["stack"]) == (13, 256, 368, 0, 0)


def test_parse_resource_usage(kr):
    constants = kr.parse_resource_usage((DATA / "cuobjdump_resource_usage_sm90.txt").read_text())
    assert constants["_ZN7shr_ops4cuda16blur_pass_kernelIddLi3001EEEvPKT_PT0_liibNS0_8HalfTapsIS5_XT1_EEE"] == 24584
    assert constants["_Z12spill_kernelPKfPfi"] == 548
    assert len(constants) == 5  # the module's own CONSTANT[4] (Common) is no kernel's


def test_short_name(kr):
    names = [kr.short_name(d) for d in DEMANGLED.values()]
    assert names == ["decode_kernel<float, float>", "blur_pass_kernel<float, float, 16>", "encode_kernel<Half, float>",
                     "spill_kernel"]


def test_dynamic_smem_at_64x64(kr):
    # 2 (H + W) sizeof(acc_t) + scratch of 2 kWarps = 16 values: acc_t (encode), double (loss)
    assert kr.dynamic_smem("encode_kernel<Half, float>", 64, 64, 8) == 1024 + 64
    assert kr.dynamic_smem("encode_backward_kernel<Half, double>", 64, 64, 8) == 2048 + 128
    assert kr.dynamic_smem("heatmap_loss_kernel<float, float>", 64, 64, 8) == 1024 + 128
    assert kr.dynamic_smem("decode_kernel<float, float>", 64, 64, 8) == 0
    assert kr.dynamic_smem("new_kernel<float>", 64, 64, 8) is None


@pytest.mark.parametrize("regs, smem, blocks, limiter", [
    (32, 0, 8, "threads + registers"),  # 1024 registers a warp: 16 warps per sub-partition
    (33, 0, 6, "registers"),  # 1056 rounded up to 1280: 12 warps per sub-partition, 48 per SM
    (34, 256, 6, "registers"),  # decode_kernel<float, float>
    (64, 0, 4, "registers"),
    (255, 0, 1, "registers"),  # 8192 a warp: 2 per sub-partition
    (256, 0, 0, "does not fit"),
    (32, 48 * 1024, 4, "shared memory"),  # 49152 + 1024 reserved: 233472 // 50176 = 4
    (32, 100 * 1024, 2, "shared memory"),
    (32, 227 * 1024, 1, "shared memory"),  # the opt-in limit, with its reserved 1 KiB: all 228 KiB
    (32, 227 * 1024 + 1, 0, "does not fit"),
])
def test_occupancy_256_threads(kr, regs, smem, blocks, limiter):
    occ = kr.occupancy(regs, smem, 256)
    assert (occ["blocks_per_sm"], occ["active_warps"], occ["limiter"]) == (blocks, 8 * blocks, limiter)
    assert occ["occupancy"] == 8 * blocks / 64


def test_occupancy_small_blocks(kr):
    assert kr.occupancy(16, 0, 32)["limiter"] == "blocks"  # 32 blocks of one warp: 50 %
    assert kr.occupancy(16, 0, 32)["occupancy"] == 0.5
    assert kr.occupancy(40, 0, 64)["active_warps"] == 48  # 12 per sub-partition, not 65536 // 1280 = 51


def test_rows_for(kr, kernels):
    rows = {r["kernel"]: r for r in kr.rows_for(list(kernels.values()), DEMANGLED, "x.cu", 256)}
    assert rows["decode_kernel<float, float>"]["occupancy"] == 0.75
    encode = rows["encode_kernel<Half, float>"]
    assert (encode["dynamic_smem_64x64"], encode["blocks_per_sm"]) == (1088, 8)
    assert "blur_pass_kernel<double, double, 3001>" not in rows  # not demangled: left mangled
    assert any(name.startswith("_ZN7shr_ops4cuda16blur_pass_kernelIdd") for name in rows)


def test_replace_section(kr):
    section = "## Kernels\n\n| a |"
    begin, end = kr.docs_sections.markers(kr.SECTION)
    block = f"{begin}\n{section}\n{end}"
    assert kr.replace_section(None, section) == f"# Performance\n\n{block}\n"
    assert kr.replace_section("# P\n\ntext\n", section) == f"# P\n\ntext\n\n{block}\n"
    old = f"# P\n\nbefore\n\n{begin}\nold table\n{end}\n\nafter\n"
    assert kr.replace_section(old, section) == f"# P\n\nbefore\n\n{block}\n\nafter\n"


def test_setup_nvcc_flags(kr):
    flags = kr.setup_nvcc_flags()  # what setup.py passes to nvcc, read from setup.py
    assert flags and all(isinstance(f, str) for f in flags)


def test_docs_section_names_spills(kr, kernels):
    rows = kr.rows_for(list(kernels.values()), DEMANGLED, "x.cu", 256)
    info = dict(sources=["csrc/cuda/x_kernel.cu"], seconds=1.0, cores=2, threads=256, cuobjdump=None,
                nvcc_version=["release 13.0"], command="nvcc ...")
    text = kr.docs_section(rows, info)
    assert "spills (stores / loads): `spill_kernel` (664 / 748 bytes)" in text
    assert "stack frame but no spills" in text and "`blur_pass_kernel<float, float, 16>`" in text
    assert "1-32: 8 (64/64 warps), 33-40: 6 (48/64 warps), 41-48: 5 (40/64 warps), 49-64: 4 (32/64 warps)" in text
    assert "| `decode_kernel<float, float>` | x.cu | 34 | 256 | 0 | 0 / 0 | 0 | ? | 6 | 48/64 (75.0 %) | registers |" in text


def test_fit_sweep_kernels_and_table(kr):
    assert kr.is_fit_sweep_kernel("decode_fused_kernel<float, float, 16>")
    assert kr.is_fit_sweep_kernel("decode_kernel<double, double, double, 16, true>")
    assert not kr.is_fit_sweep_kernel("decode_kernel<float, float, float, 16, false>")  # blur=None: no fit
    assert not kr.is_fit_sweep_kernel("decode_fused_kernel<float, float, 3001>")  # the large tap capacity
    assert not kr.is_fit_sweep_kernel("decode_kernel<float, Half, float, 16, true>")  # mixed dtypes
    assert not kr.is_fit_sweep_kernel("blur_pass_kernel<float, float, 16>")
    assert kr.fit_min_blocks_default() == 4  # csrc/cuda/cuda_device.cuh

    def row(name, regs, spills):
        occ = kr.occupancy(regs, 0, 256)
        return dict(kernel=name, registers=regs, spill_stores=spills, spill_loads=2 * spills, stack=8, **occ)

    name = "decode_fused_kernel<float, float, 16>"
    sweep = {4: [row(name, 64, 240), row("encode_kernel<float, float>", 30, 0)], 2: [row(name, 128, 0)]}
    table = kr.fit_sweep_table(sweep)
    assert table[2:] == [f"| `{name}` | 4 | 64 | 240 / 480 | 8 | 4 | 32/64 (50.0 %) | registers |",
                         f"| `{name}` | 2 | 128 | 0 / 0 | 8 | 2 | 16/64 (25.0 %) | registers |"]
    info = dict(sources=["csrc/cuda/decode_kernel.cu"], seconds=1.0, cores=2, threads=256, cuobjdump=None,
                nvcc_version=["release 13.0"], command="nvcc ...", fit_sweep=sweep, fit_min_blocks=4,
                sweep_seconds=2.0)
    text = kr.docs_section([], info)
    assert "### The fit kernels' register cap" in text and table[-1] in text
