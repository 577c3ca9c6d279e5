"""Smoke runs of the two WGSEF experiments (``--preset tiny``: a few steps, seconds): the
pipelines run end to end, every method lands on exactly k groups, and the shrunk networks give
the masked networks' logits."""

import json

import pytest

from experiments.wgsef import breast_cancer, fashion_mnist
from memjax.data import DatasetUnavailableError, fashion_mnist_split


def test_breast_cancer_tiny_preset_ends_at_exactly_k(tmp_path):
    text = breast_cancer.main(["--preset", "tiny", "--ks", "3", "--out", str(tmp_path)])
    assert "exactly k input features" in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    for method in (*breast_cancer.METHODS, "l1_logreg"):
        (run,) = summary["results"][method]["3"]
        assert run["after"] == 3, method
        assert 0.0 <= run["acc"] <= 1.0


def test_fashion_mnist_tiny_preset_exact_k_and_removal(tmp_path):
    try:
        fashion_mnist_split(1, n_test_per_class=1)
    except DatasetUnavailableError:
        pytest.skip("Fashion-MNIST is not installed (apt install dataset-fashion-mnist)")
    fashion_mnist.main(["--preset", "tiny", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "lenet5" / "summary.json").read_text())
    dense, wgsef = rows
    assert (dense["method"], dense["filters"], wgsef["method"]) == ("dense", "6:16", "wgsef")
    assert wgsef["filters"] == "2:3"  # exactly k filters per layer, physically removed
    assert wgsef["params"] < dense["params"] and wgsef["MFLOPs"] < dense["MFLOPs"]
    assert wgsef["max |masked - shrunk|"] < 1e-4
    assert (tmp_path / "lenet5" / "latency.md").exists()
