"""Smoke test of ``experiments.benchmarks.wgsef_prox`` on tiny sizes (no timing asserted)."""

from __future__ import annotations

import json

from experiments.benchmarks import wgsef_prox as bench


def test_benchmark_writes_table_plot_and_closing_line(tmp_path, capsys):
    summary = bench.main(
        [
            "--sizes",
            "200",
            "1000",
            "--repeats",
            "1",
            "--budget",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert "| m |" in out and "targets at m = 1e+03 (1e6 not measured)" in out
    assert (tmp_path / "wgsef_prox.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "wgsef_prox.json").read_text())
    assert [r["m"] for r in saved["records"]] == [200, 1000]
    for r in summary["records"]:
        assert set(r["median_s"]) == set(bench.LINES)
        assert all(t > 0 for t in r["median_s"].values())
        assert r["agreement"] < 1e-5  # the timed code is correct: jit sort == host reference
        assert set(r["compile_s"]) == {"jit sort", "jit bisection", "jit group lasso"}


def test_numpy_floor_matches_the_library_group_lasso():
    import jax.numpy as jnp
    import numpy as np

    from memjax.sparsity import prox_group_lasso

    x, ids, _ = bench.make_problem(500)
    np.testing.assert_allclose(
        bench.numpy_group_lasso(x, ids, 500, bench.LAM),
        np.asarray(prox_group_lasso(jnp.asarray(x), jnp.asarray(ids), 500, bench.LAM)),
        rtol=1e-5,
        atol=1e-6,
    )
