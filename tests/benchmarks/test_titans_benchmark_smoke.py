"""Smoke test of ``experiments.benchmarks.titans_vs_pytorch`` (tiny config, no torch needed)."""

import sys

import pytest

from experiments.benchmarks import titans_vs_pytorch as bench


def test_memjax_measurement_record():
    # Forward only: the backward's compile alone takes 10-15 s on the shared 2-core machine.
    recs = bench.measure_memjax(
        "faithful",
        64,
        1,
        modes=("fwd",),
        repeats=3,
        min_repeat_s=0.0,
        d_model=32,
        num_heads=2,
        d_head=16,
        chunk_size=16,
        depth=1,
    )
    assert [r["mode"] for r in recs] == ["fwd"]
    for r in recs:
        assert r["status"] == "ok" and r["framework"] == "memjax"
        assert (r["L"], r["B"], r["setting"]) == (64, 1, "faithful")
        assert r["tokens_per_s"] > 0 and r["median_s"] > 0 and len(r["times_s"]) >= 3
        assert r["peak_mb"] > 0 and r["rss_before_mb"] > 0 and r["compile_s"] >= 0


@pytest.mark.parametrize("setting", ["default", "faithful", "paper"])
def test_settings_build(setting):
    layer = bench.memjax_layer(setting, d_model=32, num_heads=2, d_head=16, chunk_size=16)
    assert layer.chunk_size == 16
    if setting != "paper":
        assert layer.grad_point == ("initial" if setting == "default" else "chunk_start")
        # the port's computation (tests/titans/test_titans_pytorch_parity.py)
        assert layer == bench_port_layer(setting)
        assert (layer.read_point, layer.gate_granularity, layer.conv_width) == (
            "token",
            "chunk_step",
            0,
        )
        assert layer.pre_norm and layer.output_gate == "head"


def bench_port_layer(setting):
    from memjax.compat.titans_pytorch import titans_pytorch_lmm

    batch_size = None if setting == "default" else 16
    return titans_pytorch_lmm(32, 2, 16, 16, batch_size=batch_size)


def test_peer_missing_gives_clear_skip(monkeypatch):
    monkeypatch.setitem(sys.modules, "titans_pytorch", None)  # makes the import fail
    versions, message = bench.check_peer()
    assert versions is None
    assert "SKIPPED" in message and "pip install titans-pytorch==0.5.5" in message
    with pytest.raises(bench.PeerMissing, match="SKIPPED"):
        bench.measure_port("default", 128, 1)
    recs = bench._worker({"framework": "port", "setting": "default", "length": 128, "batch": 1})
    assert [r["status"] for r in recs] == ["skipped", "skipped"]
    assert all("pip install torch==2.13.0" in r["message"] for r in recs)
