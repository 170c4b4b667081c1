"""Image datasets: CUB-200-2011, revisited Oxford/Paris, image folders, Omniglot, Fashion-MNIST.

Every dataset: ``len(ds)``, ``ds[i] -> (PIL RGB image, int label)``,
``ds.labels`` (N,) int64 (-1 unknown), ``ds.name``, ``ds.fingerprint()``,
``ds.thumbnail(i, size)``; file-backed ones also ``ds.paths``.
"""
from .base import ArrayDataset, FileDataset, ImageDataset, Subset, find_corrupt, open_image, to_rgb
from .cub import CUB200
from .download import check_integrity, download_url, extract_archive
from .factory import DATASETS, RETRIEVAL_DATASETS, build_dataset, is_retrieval, load_benchmark
from .fashion_mnist import FASHION_CLASSES, FashionMNIST
from .folder import ImageFolder
from .idx import read_idx
from .omniglot import Omniglot
from .oxford import RevisitedOxfordParis
from .splits import build_splits, train_split

__all__ = ["ImageDataset", "FileDataset", "ArrayDataset", "Subset", "find_corrupt",
           "open_image", "to_rgb", "read_idx", "download_url", "check_integrity",
           "extract_archive", "CUB200", "FashionMNIST", "FASHION_CLASSES", "ImageFolder", "Omniglot",
           "RevisitedOxfordParis", "build_dataset", "DATASETS", "RETRIEVAL_DATASETS", "is_retrieval",
           "load_benchmark", "train_split", "build_splits"]
