"""The level-5 MAT-file reader (on files written here from the format's layout, in both byte orders, compressed or
not) and the PA-100K `annotation.mat` conversion that the `pa100k` builder then loads."""

import struct
import zlib

import numpy as np
import pytest

from datasets_scripts import DatasetFormatError, load_aptm_dataset
from datasets_scripts.matfile import read_mat
from datasets_scripts.pa100k_annotation import convert_annotation, main
from processing_aptm import PA100K_ATTRIBUTES

from helpers.dataset_files import write_image

CLASSES = {np.dtype("f8"): (6, 9), np.dtype("u1"): (9, 2), np.dtype("i4"): (12, 5), np.dtype(bool): (9, 2)}


def element(kind, payload, order, small=True):
    if small and len(payload) <= 4:  # small data element: size in the upper half of the first word
        return struct.pack(order + "I", (len(payload) << 16) | kind) + payload.ljust(4, b"\0")
    return struct.pack(order + "II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def matrix(name, value, order):
    """One miMATRIX element: a str is a char row, a list a column cell array, a numpy array numeric or logical."""
    if isinstance(value, str):
        matlab_class, dims, flags = 4, (1, len(value)), 0
        data = element(4, np.array([ord(c) for c in value], dtype=order + "u2").tobytes(), order)
    elif isinstance(value, list):
        matlab_class, dims, flags = 1, (len(value), 1), 0
        data = b"".join(matrix("", item, order) for item in value)
    else:
        value = np.asarray(value)
        (matlab_class, kind), dims = CLASSES[value.dtype], value.shape
        flags = 0x0200 if value.dtype == bool else 0
        stored = np.dtype("u1" if value.dtype == bool else value.dtype).newbyteorder(order)
        data = element(kind, value.astype(stored).tobytes(order="F"), order)
    header = element(6, struct.pack(order + "II", matlab_class | flags, 0), order)
    header += element(5, np.array(dims, dtype=order + "i4").tobytes(), order)
    header += element(1, name.encode(), order)
    return element(14, header + data, order, small=False)


def write_mat(path, variables, order="<", compress=False):
    text = b"MATLAB 5.0 MAT-file, written by the APTM tests".ljust(116, b" ")
    header = text + b"\0" * 8 + struct.pack(order + "H", 0x0100) + (b"IM" if order == "<" else b"MI")
    body = b""
    for name, value in variables.items():
        block = matrix(name, value, order)
        if compress:  # miCOMPRESSED: a zlib stream holding the matrix element, not padded
            block = zlib.compress(block)
            block = struct.pack(order + "II", 15, len(block)) + block
        body += block
    path.write_bytes(header + body)
    return path


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("compress", [False, True])
def test_reader_round_trip(tmp_path, order, compress):
    doubles = np.arange(12, dtype="f8").reshape(3, 4) / 7
    labels = np.array([[1, 0, 1], [0, 0, 1]], dtype="u1")
    path = write_mat(tmp_path / "a.mat", {"doubles": doubles, "labels": labels, "ab": "héllo",
                                          "names": ["001.jpg", "002.jpg", ""], "flags": np.array([[True, False]]),
                                          "cube": np.arange(24, dtype="i4").reshape(2, 3, 4)}, order, compress)
    variables = read_mat(path)
    assert np.array_equal(variables["doubles"], doubles) and variables["doubles"].dtype == np.float64
    assert np.array_equal(variables["labels"], labels) and variables["labels"].shape == (2, 3)
    assert np.array_equal(variables["cube"], np.arange(24).reshape(2, 3, 4))
    assert variables["ab"] == "héllo" and variables["flags"].dtype == bool
    assert variables["names"].shape == (3, 1) and list(variables["names"][:, 0]) == ["001.jpg", "002.jpg", ""]


def test_reader_errors_name_the_file(tmp_path):
    good = write_mat(tmp_path / "good.mat", {"labels": np.ones((4, 26), dtype="u1")})
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(DatasetFormatError, match="truncated.mat.*truncated file"):
        read_mat(truncated)
    hdf5 = tmp_path / "v73.mat"
    hdf5.write_bytes(b"MATLAB 7.3 MAT-file".ljust(512, b" ") + b"\x89HDF")
    with pytest.raises(DatasetFormatError, match="v73.mat is a MATLAB 7.3"):
        read_mat(hdf5)
    (tmp_path / "text.mat").write_text("x" * 200)
    with pytest.raises(DatasetFormatError, match="not a level-5 MAT-file"):
        read_mat(tmp_path / "text.mat")
    struct_array = bytearray(good.read_bytes())
    struct_array[128 + 16] = 2  # the class byte of the first matrix's array flags -> struct
    (tmp_path / "struct.mat").write_bytes(bytes(struct_array))
    with pytest.raises(DatasetFormatError, match="variable 'labels': struct arrays are not supported"):
        read_mat(tmp_path / "struct.mat")
    corrupt = write_mat(tmp_path / "corrupt.mat", {"labels": np.ones((4, 26), dtype="u1")}, compress=True)
    corrupt.write_bytes(corrupt.read_bytes()[:136] + b"\0" * (len(corrupt.read_bytes()) - 136))
    with pytest.raises(DatasetFormatError, match="corrupt.mat: a compressed variable is corrupt"):
        read_mat(corrupt)


def pa100k_tree(root, sizes=(3, 2, 2), image_root="release_data/release_data", **overrides):
    rng = np.random.default_rng(0)
    variables, index = {"attributes": list(PA100K_ATTRIBUTES)}, 1
    for split, size in zip(("train", "val", "test"), sizes):
        names = [f"{index + i:06d}.jpg" for i in range(size)]
        index += size
        for name in names:
            write_image(root / image_root / name, index)
        variables[f"{split}_images_name"] = names
        variables[f"{split}_label"] = rng.integers(0, 2, (size, 26)).astype("f8")
    variables.update(overrides)
    write_mat(root / "annotation.mat", {k: v for k, v in variables.items() if v is not None}, compress=True)
    return variables


def test_annotation_to_builder(tmp_path):
    variables = pa100k_tree(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"original annotation.mat.*python -m datasets_scripts.pa100k_annotation"):
        load_aptm_dataset("pa100k", data_dir=tmp_path)
    paths = convert_annotation(tmp_path)
    assert [p.name for p in paths] == ["PA100K_train.json", "PA100K_val.json", "PA100K_test.json"]
    data = load_aptm_dataset("pa100k", data_dir=tmp_path)
    assert {split: data[split].num_rows for split in data} == {"train": 3, "validation": 2, "test": 2}
    assert data["test"]["image_path"] == ["release_data/release_data/000006.jpg", "release_data/release_data/000007.jpg"]
    assert data["train"]["attribute_labels"] == variables["train_label"].astype(int).tolist()
    assert data["validation"][0]["image"].size == (20, 60)
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_annotation(tmp_path)
    main([str(tmp_path), "--overwrite"])  # the command line
    assert (tmp_path / "PA100K_test.json").stat().st_size > 0


@pytest.mark.parametrize("override, message", [
    ({"attributes": list(PA100K_ATTRIBUTES[:25])}, "expected the 26 standard PA-100K attributes"),
    ({"attributes": ["Male"] + list(PA100K_ATTRIBUTES[1:])}, r"differences at \[\(0, 'Male'\)\]"),
    ({"val_label": np.ones((2, 25))}, r"'val_label': shape \(2, 25\), expected \(2, 26\)"),
    ({"test_label": np.full((2, 26), 2.0)}, r"'test_label', record 0 \(000006.jpg\): labels must be 0 or 1"),
    ({"train_images_name": None}, r"missing variable\(s\) \['train_images_name'\]"),
    ({"train_images_name": np.ones((3, 1))}, "'train_images_name': expected a cell array of strings"),
])
def test_annotation_errors(tmp_path, override, message):
    pa100k_tree(tmp_path, **override)
    with pytest.raises(DatasetFormatError, match=message):
        convert_annotation(tmp_path)
    assert not (tmp_path / "PA100K_train.json").exists()


def test_annotation_files_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="Download PA-100K from its authors"):
        convert_annotation(tmp_path)
    pa100k_tree(tmp_path, image_root="elsewhere")
    with pytest.raises(FileNotFoundError, match="image '000001.jpg' is in none of"):
        convert_annotation(tmp_path)
