"""The compile-time benchmark's report: each row against its target and its value before the
export cache, with how the second run had its train step (no subprocess is run here)."""

from __future__ import annotations

from experiments.benchmarks import compile_time as ct


def test_report_rows_targets_and_before():
    warm = {
        "max_first_step_s": 1.5,
        "max_first_step_cpu_s": 1.25,
        "first_step_s": [1.5, 0.5],
        "process_s": 9.0,
        "export_cache": ["from the export cache", "from the export cache"],
    }
    cold = {**warm, "max_first_step_s": 13.0, "process_s": 40.0, "export_cache": []}
    text = ct.report(
        {
            "loads": ["1.0", "1.1"],
            "titans": {
                "compile_s": 6.5,
                "compile_cpu_s": 9.0,
                "trace_s": 1.0,
                "lower_s": 0.25,
                "xla_compile_s": 5.25,
                "trace_cpu_s": 1.0,
                "lower_cpu_s": 0.25,
                "xla_compile_cpu_s": 7.75,
                "step_s": 0.008,
            },
            "cache": {"titans.recall": {"cold": cold, "warm": warm}},
        },
        "demo",
    )
    lines = text.splitlines()
    (titans,) = [ln for ln in lines if ln.startswith("| Titans step: trace")]
    assert "| 6.50 s | 9.00 s | ≤ 8 s | yes / **no** | 6.83 / 11.29 s |" in titans
    (second,) = [ln for ln in lines if ln.startswith("| titans.recall, 2nd run")]
    assert "| 1.50 s | 1.25 s | ≤ 2 s | yes / yes | 3.57 / 3.62 s |" in second
    assert "| … 2nd run: train step | from the export cache |" in text
    assert "1-minute load average, before and after each measurement: 1.0, 1.1" in text
    assert set(ct.BEFORE) >= {"titans", "sparsey", "titans.recall"}
