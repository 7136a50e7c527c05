"""MNIST and Fashion-MNIST from IDX files in a folder the user provides (we never download them).

The folder must hold the four files under their original names, each optionally ending in ``.gz``:
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte`` (Fashion-MNIST uses the same names). Pixels are scaled to [0, 1].

Splits: the t10k files are the test split; the last sixth of a fixed permutation of the train files
(10,000 of MNIST's 60,000 images, ``round(N / 6)`` of a smaller file) is the validation split and the
rest (50,000) the training split (:func:`~descentlab.problems.classification.carve_validation`, split
seed 0). The data fingerprint hashes the (decompressed) bytes of all four files, so pointing a
variable at other files changes it.

Model options: the MLP takes ``dropout``, ``batch_norm``, ``activation`` and ``init``; the CNN
``batch_norm``, ``activation`` and ``init`` (see :mod:`descentlab.problems.networks`).

Use :func:`mnist_problem` to build a problem for a folder and pass it to
:func:`~descentlab.problems.register`, or set ``DESCENTLAB_MNIST_DIR`` (and/or
``DESCENTLAB_FASHION_MNIST_DIR``) before importing :mod:`descentlab.problems` to register
``mnist-mlp`` and ``mnist-cnn`` (``fashion-mnist-mlp``, ``fashion-mnist-cnn``). A variable pointing
to a folder without the files gives a warning naming the variable and the missing file, and
registers nothing; the files are read (and cached per process) only when a task is built.

References: LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
recognition", 1998; Xiao, Rasul & Vollgraf, "Fashion-MNIST", 2017, https://arxiv.org/abs/1708.07747.
"""

from __future__ import annotations

import os
import warnings
from functools import cache
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from descentlab.problems.base import Problem
from descentlab.problems.classification import ClassificationData, carve_validation, classification_problem
from descentlab.problems.fingerprints import fingerprint_values
from descentlab.problems.idx import IdxFormatError, load_idx, read_idx_bytes
from descentlab.problems.networks import CNN_OPTIONS, MLP_OPTIONS, cnn2d, domains_for, mlp
from descentlab.problems.registry import register

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
ENVIRONMENT_FOLDERS = {"DESCENTLAB_MNIST_DIR": "mnist", "DESCENTLAB_FASHION_MNIST_DIR": "fashion-mnist"}
Architecture = Literal["mlp", "cnn"]
CLASSES = 10


def find_mnist_files(folder: str | os.PathLike[str]) -> tuple[Path, ...]:
    """Paths of the four MNIST IDX files in ``folder`` (plain or ``.gz``), in :data:`MNIST_FILES` order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"MNIST folder {folder} does not exist; it must hold {', '.join(MNIST_FILES)}"
        )
    found = []
    for stem in MNIST_FILES:
        candidates = [folder / stem, folder / f"{stem}.gz"]
        existing = [candidate for candidate in candidates if candidate.is_file()]
        if not existing:
            raise FileNotFoundError(
                f"no {stem} or {stem}.gz in {folder}; the folder must hold {', '.join(MNIST_FILES)} "
                "(each may be gzipped), as distributed by the MNIST and Fashion-MNIST sites"
            )
        found.append(existing[0])
    return tuple(found)


def images_and_labels(
    images_path: Path, labels_path: Path
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Flattened float32 images in [0, 1], int64 labels and the image shape, after checking they fit."""
    images, labels = load_idx(images_path), load_idx(labels_path)
    if images.ndim != 3:
        raise IdxFormatError(
            f"{images_path}: expected images of shape (count, rows, columns), got {images.shape}"
        )
    if labels.ndim != 1:
        raise IdxFormatError(f"{labels_path}: expected labels of shape (count,), got {labels.shape}")
    if len(images) != len(labels):
        raise IdxFormatError(
            f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels"
        )
    if not len(images):
        raise IdxFormatError(
            f"{images_path} holds no images (shape {images.shape}); every split needs at least one, so "
            "replace it by the complete file"
        )
    if labels.min() < 0 or labels.max() >= CLASSES:
        raise IdxFormatError(
            f"{labels_path}: labels must be in 0..{CLASSES - 1}, found {labels.min()}..{labels.max()}"
        )
    inputs = torch.tensor(images.reshape(len(images), -1), dtype=torch.float32) / 255
    return inputs, torch.tensor(labels, dtype=torch.int64), images.shape[1:]


@cache
def mnist_data(folder: Path) -> tuple[ClassificationData, tuple[int, int]]:
    """The splits of ``folder`` (see the module docstring) and the image shape (cached per folder)."""
    train_images, train_labels, test_images, test_labels = find_mnist_files(folder)
    *train, image_shape = images_and_labels(train_images, train_labels)
    *test, test_image_shape = images_and_labels(test_images, test_labels)
    if test_image_shape != image_shape:
        raise IdxFormatError(
            f"{train_images} holds images of {image_shape} pixels but {test_images} of {test_image_shape}"
        )
    if len(train[0]) < 2:  # 0 images failed above
        raise IdxFormatError(f"{train_images} holds a single image; training and validation need at least 2")
    validation_count = max(1, round(len(train[0]) / 6))
    return carve_validation(*train, *test, validation_count=validation_count), image_shape


@cache
def mnist_files_fingerprint(folder: Path) -> str:
    """SHA-256 hex digest over the names and decompressed bytes of the four IDX files of ``folder``."""
    files = find_mnist_files(folder)
    return fingerprint_values(
        *(part for path in files for part in (path.name.removesuffix(".gz"), read_idx_bytes(path)))
    )


def mnist_network(architecture: Architecture, image_shape: tuple[int, int], **options: Any) -> nn.Module:
    """MLP ``pixels-256-10`` or the two-block CNN of :func:`~descentlab.problems.networks.cnn2d`.

    ``options`` are the model options of :mod:`descentlab.problems.networks`.
    """
    rows, columns = image_shape
    if architecture == "mlp":
        return mlp((rows * columns, 256, CLASSES), **options)
    if rows != columns:
        raise ValueError(f"the CNN expects square images, got {rows} x {columns}")
    return cnn2d(rows, (16, 32), CLASSES, **options)


def mnist_problem(
    folder: str | os.PathLike[str], name: str = "mnist-mlp", architecture: Architecture = "mlp"
) -> Problem:
    """A learning problem on the MNIST-format IDX files in ``folder`` (not registered; see module doc).

    The files must exist now (a clear ``FileNotFoundError`` otherwise) but are read when the first
    task is built. Default budget: about one epoch of 60k images at batch size 128.

    Args:
        folder: folder holding the four IDX files (:data:`MNIST_FILES`, optionally ``.gz``).
        name: registry name for the problem.
        architecture: ``"mlp"`` (784-256-10) or ``"cnn"`` (two conv blocks).
    """
    if architecture not in ("mlp", "cnn"):
        raise ValueError(f"architecture must be 'mlp' or 'cnn', got {architecture!r}")
    folder = Path(folder).resolve()
    find_mnist_files(folder)

    def load_data() -> ClassificationData:
        return mnist_data(folder)[0]

    def build_model(**options: Any) -> nn.Module:
        return mnist_network(architecture, mnist_data(folder)[1], **options)

    options = MLP_OPTIONS if architecture == "mlp" else CNN_OPTIONS

    return classification_problem(
        name,
        f"{'MLP 784-256-10' if architecture == 'mlp' else 'two-block CNN'} on the IDX files in {folder}",
        load_data,
        build_model,
        budget_steps=500,
        batch_size=128,
        # Not measured here (no MNIST offline); typical one-epoch accuracies on MNIST with Adam.
        target=0.95 if architecture == "mlp" else 0.97,
        tags=("idx",),
        options=options,
        option_domains=domains_for(options),
        data_fingerprint=lambda: mnist_files_fingerprint(folder),
    )


def register_from_environment() -> list[str]:
    """Register ``<prefix>-mlp``/``<prefix>-cnn`` for each folder variable set; return the names.

    A set variable whose folder lacks the files warns (naming the variable and the file) and
    registers nothing, so a stale variable never breaks ``import descentlab.problems``.
    """
    registered = []
    for variable, prefix in ENVIRONMENT_FOLDERS.items():
        folder = os.environ.get(variable)
        if not folder:
            continue
        try:
            problems = [
                mnist_problem(folder, f"{prefix}-{architecture}", architecture)
                for architecture in ("mlp", "cnn")
            ]
        except FileNotFoundError as error:
            warnings.warn(f"{variable}={folder!r}: {error}; no {prefix} problems registered", stacklevel=2)
            continue
        for problem in problems:
            register(problem)
            registered.append(problem.name)
    return registered


register_from_environment()
