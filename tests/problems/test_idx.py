"""IDX reading on small files the tests write byte by byte, and MNIST folder problems on them."""

import gzip
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import torch

from descentlab.problems import IdxFormatError, load_idx, mnist_problem, registry
from descentlab.problems.mnist import MNIST_FILES, mnist_data, register_from_environment

TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written from the format description: magic, big-endian sizes, big-endian data."""
    kind = array.dtype.kind + str(array.dtype.itemsize)
    header = bytes([0, 0, TYPE_CODES[kind], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("compressed", [False, True])
def test_round_trip(tmp_path, dtype, compressed):
    array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype) if dtype != "u1" else np.arange(24, dtype="u1")
    raw = idx_bytes(array)
    path = tmp_path / ("data.idx.gz" if compressed else "data.idx")
    path.write_bytes(gzip.compress(raw) if compressed else raw)
    loaded = load_idx(path)
    np.testing.assert_array_equal(loaded, array)
    assert loaded.shape == array.shape and loaded.dtype.isnative


def test_mnist_header_is_read_as_documented(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(bytes.fromhex("00000801") + (3).to_bytes(4, "big") + bytes([7, 2, 1]))
    np.testing.assert_array_equal(load_idx(path), [7, 2, 1])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere.*does not exist"):
        load_idx(tmp_path / "nothere")


def test_bad_magic_number_names_the_file_and_the_expected_form(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + (1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(IdxFormatError, match=r"bad.*bad magic number 0x12340801.*0x00000803"):
        load_idx(path)
    path.write_bytes(b"\x00\x00\x07\x01" + (1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(IdxFormatError, match="bad magic number 0x00000701"):
        load_idx(path)


def test_truncated_data_says_what_was_expected(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((2, 3, 3), dtype="u1"))[:-5]))
    with pytest.raises(
        IdxFormatError, match=r"images.gz: truncated; shape \(2, 3, 3\) of uint8 needs 18 .* found 13"
    ):
        load_idx(path)


def test_truncated_header_and_tiny_file(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(bytes.fromhex("00000803") + (2).to_bytes(4, "big"))
    with pytest.raises(IdxFormatError, match="truncated header; 3 dimensions need 16 header bytes, found 8"):
        load_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(IdxFormatError, match="2 bytes, too short"):
        load_idx(path)


def test_trailing_bytes_are_an_error(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(4, dtype="u1")) + b"\x01")
    with pytest.raises(IdxFormatError, match=r"longer than its header says.*needs 4 .* found 5"):
        load_idx(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(b"definitely not gzip")
    with pytest.raises(IdxFormatError, match=r"broken.gz: not a readable gzip file"):
        load_idx(path)


@pytest.mark.parametrize(
    "shape, itemsize, claimed",
    [
        ((65536,) * 4, 1, 2**64),  # NumPy's int64 product wraps to 0 and would accept an empty body
        ((2**32 - 1,) * 3, 8, (2**32 - 1) ** 3 * 8),
        ((2**31 + 1,), 1, 2**31 + 1),  # just over the default max_bytes of 2 GiB
    ],
)
def test_a_header_claiming_too_much_data_is_refused_before_reading(tmp_path, shape, itemsize, claimed):
    path = tmp_path / "claims.gz"
    type_code = {1: 0x08, 8: 0x0E}[itemsize]
    path.write_bytes(
        gzip.compress(bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape))
    )
    with pytest.raises(
        IdxFormatError, match=rf"claims.gz: the header claims .* {claimed} bytes of data, more"
    ):
        load_idx(path)


def test_max_bytes_is_the_largest_data_size_accepted(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(idx_bytes(np.arange(24, dtype=">i4")))  # 96 data bytes
    with pytest.raises(IdxFormatError, match=r"claims shape \(24,\) of int32, 96 bytes .*max_bytes=95"):
        load_idx(path, max_bytes=95)
    np.testing.assert_array_equal(load_idx(path, max_bytes=96), np.arange(24))


def gzip_bomb(path, header, zeros):
    """``header`` followed by ``zeros`` zero bytes, gzipped: about 1 KB on disk per MB inflated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    chunk = bytes(2**20)
    with open(path, "wb") as file:
        file.write(compressor.compress(header))
        for _ in range(zeros // len(chunk)):
            file.write(compressor.compress(chunk))
        file.write(compressor.flush())


@pytest.mark.parametrize(
    "header, problem",
    [
        # A small header and far more data than it claims (before the fix: all of it decompressed).
        (bytes.fromhex("00000801") + (3).to_bytes(4, "big"), r"longer than its header says; shape \(3,\)"),
        # A header claiming 4 GiB.
        (bytes.fromhex("00000801") + (2**32 - 1).to_bytes(4, "big"), "the header claims"),
    ],
    ids=["more-data-than-claimed", "claims-4-GiB"],
)
def test_a_gzip_bomb_costs_the_memory_of_its_header_only(tmp_path, header, problem):
    path = tmp_path / "bomb.gz"
    inflated = 64 * 2**20
    gzip_bomb(path, header, inflated)
    assert path.stat().st_size < inflated / 500
    tracemalloc.start()  # counts every Python and NumPy allocation, in this test only
    try:
        with pytest.raises(IdxFormatError, match=problem):
            load_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"reading the bomb peaked at {peak / 2**20:.0f} MiB"


def test_a_truncated_gzip_costs_what_it_holds_not_what_its_header_claims(tmp_path):
    path = tmp_path / "claims-a-gigabyte.gz"
    gzip_bomb(path, bytes.fromhex("00000801") + (2**30).to_bytes(4, "big"), 8 * 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(IdxFormatError, match=r"truncated; .* needs 1073741824 .*found 8388608"):
            load_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"reading 8 MiB of data peaked at {peak / 2**20:.0f} MiB"


def write_mnist_folder(folder, train=40, test=20, side=8, compressed=False, data_seed=0):
    """A tiny MNIST-format folder whose label is readable from the image (its mean brightness)."""
    generator = np.random.default_rng(data_seed)
    folder.mkdir(exist_ok=True)
    arrays = []
    for count in (train, test):
        labels = generator.integers(0, 10, size=count).astype("u1")
        images = (labels[:, None, None] * 25 + generator.integers(0, 5, (count, side, side))).astype("u1")
        arrays += [images, labels]
    for stem, array in zip(MNIST_FILES, arrays):
        raw = idx_bytes(array)
        if compressed:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_mnist_problem_loads_a_folder_and_trains(tmp_path, architecture):
    train_images, train_labels, test_images, test_labels = write_mnist_folder(
        tmp_path / "mnist", compressed=True
    )
    problem = mnist_problem(tmp_path / "mnist", name="tiny", architecture=architecture)
    data, image_shape = mnist_data((tmp_path / "mnist").resolve())
    assert image_shape == (8, 8)
    # The train file splits into 33 training and round(40 / 6) = 7 validation images; t10k is the test.
    assert (len(data.train_inputs), len(data.validation_inputs)) == (33, 7)
    train_and_validation = torch.cat([data.train_inputs, data.validation_inputs]).numpy()
    expected_rows = (train_images.reshape(40, 64) / 255).astype(np.float32)
    np.testing.assert_allclose(
        train_and_validation[np.lexsort(train_and_validation.T)],
        expected_rows[np.lexsort(expected_rows.T)],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(
        np.sort(torch.cat([data.train_labels, data.validation_labels]).numpy()), np.sort(train_labels)
    )
    np.testing.assert_allclose(data.test_inputs.numpy(), test_images.reshape(20, 64) / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.test_labels.numpy(), test_labels)
    assert problem.name == "tiny" and problem.metric == "accuracy" and problem.higher_is_better
    task = problem.task(seed=0, batch_size=8)
    assert task.steps_per_epoch == 5  # ceil(33 / 8)
    assert task.evaluate_test()["accuracy"] >= 0 and task.evaluate_train()["accuracy"] >= 0
    inputs, _ = next(task.batches)
    assert inputs.shape == (8, 64) and inputs.max() <= 1
    before = task.evaluate()
    optimizer = torch.optim.Adam(task.model.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        task.loss(next(task.batches)).backward()
        optimizer.step()
    assert task.evaluate()["loss"] < before["loss"]


def test_mnist_problem_missing_file_names_it(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz in"):
        mnist_problem(tmp_path / "mnist")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mnist_problem(tmp_path / "elsewhere")


def test_mismatched_images_and_labels(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, dtype="u1")))
    problem = mnist_problem(tmp_path / "mnist")
    with pytest.raises(IdxFormatError, match=r"holds 40 images but .*train-labels-idx1-ubyte 3 labels"):
        problem.task(seed=0)


def test_labels_out_of_range(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(20, 12, dtype="u1")))
    with pytest.raises(IdxFormatError, match=r"labels must be in 0..9, found 12..12"):
        mnist_problem(tmp_path / "mnist").task(seed=0)


@pytest.mark.parametrize("train, test, emptied", [(0, 20, "train-images"), (40, 0, "t10k-images")])
def test_an_empty_split_names_its_file(tmp_path, train, test, emptied):
    write_mnist_folder(tmp_path / "mnist", train=train, test=test)
    with pytest.raises(IdxFormatError, match=rf"{emptied}-idx3-ubyte holds no images \(shape \(0, 8, 8\)\)"):
        mnist_problem(tmp_path / "mnist").task(seed=0)


def test_a_single_training_image_is_too_few(tmp_path):
    write_mnist_folder(tmp_path / "mnist", train=1)
    with pytest.raises(IdxFormatError, match=r"train-images-idx3-ubyte holds a single image; .* at least 2"):
        mnist_problem(tmp_path / "mnist").task(seed=0)


def test_bad_architecture():
    with pytest.raises(ValueError, match="architecture must be 'mlp' or 'cnn', got 'rnn'"):
        mnist_problem(".", architecture="rnn")


def test_environment_variables_register_problems(tmp_path, monkeypatch):
    write_mnist_folder(tmp_path / "fashion")
    monkeypatch.setattr(registry, "_PROBLEMS", {})
    monkeypatch.delenv("DESCENTLAB_MNIST_DIR", raising=False)
    monkeypatch.setenv("DESCENTLAB_FASHION_MNIST_DIR", str(tmp_path / "fashion"))
    assert register_from_environment() == ["fashion-mnist-mlp", "fashion-mnist-cnn"]
    assert registry.get_problem("fashion-mnist-cnn").task(seed=0).evaluate()["accuracy"] >= 0


def test_environment_variable_with_a_bad_folder_warns_and_registers_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_PROBLEMS", {})
    monkeypatch.setenv("DESCENTLAB_MNIST_DIR", str(tmp_path))
    monkeypatch.delenv("DESCENTLAB_FASHION_MNIST_DIR", raising=False)
    with pytest.warns(UserWarning, match="DESCENTLAB_MNIST_DIR=.*no train-images-idx3-ubyte"):
        assert register_from_environment() == []
    assert registry.all_problems() == []


def test_the_fingerprint_follows_the_files_the_variable_points_at(tmp_path, monkeypatch):
    write_mnist_folder(tmp_path / "one")
    write_mnist_folder(tmp_path / "same-bytes-gzipped", compressed=True)
    write_mnist_folder(tmp_path / "other", data_seed=1)
    fingerprints = {}
    for folder in ("one", "same-bytes-gzipped", "other"):
        monkeypatch.setattr(registry, "_PROBLEMS", {})
        monkeypatch.setenv("DESCENTLAB_MNIST_DIR", str(tmp_path / folder))
        monkeypatch.delenv("DESCENTLAB_FASHION_MNIST_DIR", raising=False)
        register_from_environment()
        fingerprints[folder] = registry.get_problem("mnist-mlp").fingerprint()
        assert registry.get_problem("mnist-cnn").fingerprint() != fingerprints[folder]
    assert fingerprints["one"] == fingerprints["same-bytes-gzipped"], "the fingerprint hashes the content"
    assert fingerprints["one"] != fingerprints["other"]
    assert all(len(value) == 16 and int(value, 16) >= 0 for value in fingerprints.values())


def test_changing_one_test_label_changes_the_fingerprint(tmp_path):
    write_mnist_folder(tmp_path / "a")
    _, _, _, labels = write_mnist_folder(tmp_path / "b")
    labels = labels.copy()
    labels[0] = (labels[0] + 1) % 10
    (tmp_path / "b" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    assert mnist_problem(tmp_path / "a").fingerprint() != mnist_problem(tmp_path / "b").fingerprint()
