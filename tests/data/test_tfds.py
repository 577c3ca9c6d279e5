"""tensorflow-datasets path via tfds.data_source, tested offline with mock_data."""

import numpy as np
import pytest

from memjax import data as md

tfds = pytest.importorskip("tensorflow_datasets")


def test_tfds_source_mock_mnist():
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        src = md.tfds_source("mnist", "train")
        assert len(src) == 6
        rec = src[0]
        assert rec["image"].shape == (28, 28, 1) and rec["image"].dtype == np.uint8
        arrays = src.to_numpy()
        part = src[1:3]
    assert arrays["image"].shape == (6, 28, 28, 1) and arrays["label"].shape == (6,)
    assert ((arrays["label"] >= 0) & (arrays["label"] < 10)).all()
    np.testing.assert_array_equal(part["label"], arrays["label"][1:3])


def test_tfds_source_missing_dataset(tmp_path):
    with pytest.raises(md.DatasetUnavailableError, match="tfds build mnist"):
        md.tfds_source("mnist", "train", data_dir=str(tmp_path))


def test_tfds_source_unknown_name(tmp_path):
    with pytest.raises(md.DatasetUnavailableError, match="no dataset named"):
        md.tfds_source("no_such_dataset_xyz", "train", data_dir=str(tmp_path))
