"""core.calibration: the CPU model and bf16 flags are read from /proc/cpuinfo's format."""

from defendr_cli.core.calibration import calibration_line, cpu_model_and_flags


def test_cpu_model_and_flags_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n\n"
                       "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n")
    model, flags = cpu_model_and_flags(cpuinfo)
    assert model == "Example CPU 9000"
    assert flags == {"amx_bf16": True, "amx_tile": True, "avx512_bf16": False, "avx512f": True, "avx2": True}


def test_missing_cpuinfo_gives_no_flags(tmp_path):
    _, flags = cpu_model_and_flags(tmp_path / "absent")
    assert not any(flags.values())


def test_calibration_line_names_ratios():
    figures = {"device_name": "X", "threads": 2, "cpu_flags": {"amx_bf16": True, "avx2": True},
               "matmul": {"fp32_gflops": 100.0, "bf16_gflops": 300.0}, "conv": {"fp32_gflops": 50.0, "bf16_gflops": 100.0},
               "bf16_fp32_matmul_ratio": 3.0, "bf16_fp32_conv_ratio": 2.0}
    line = calibration_line(figures)
    assert "(amx_bf16)" in line and "3.00x" in line and "2.00x" in line
