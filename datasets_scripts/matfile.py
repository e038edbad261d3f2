"""A small reader for MATLAB level-5 MAT-files (what `save` writes by default up to -v7, zlib-compressed or not), with
numpy only, so PA-100K's `annotation.mat` loads without SciPy.

Supported: numeric and logical arrays (real), char arrays, cell arrays, in either byte order. Structs, objects, sparse
and complex arrays and MATLAB 7.3 (HDF5) files raise `DatasetFormatError` naming the file and variable.
"""

import math
import struct
import zlib
from pathlib import Path

import numpy as np

from .common import DatasetFormatError

NUMERIC_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
MATRIX, COMPRESSED, UTF8, UTF16, UTF32 = 14, 15, 16, 17, 18
CELL_CLASS, CHAR_CLASS = 1, 4
NUMERIC_CLASSES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}
CLASS_NAMES = {2: "struct", 3: "object", 5: "sparse"}
COMPLEX_FLAG, LOGICAL_FLAG = 0x0800, 0x0200


class _Elements:
    """Iterates over the data elements (type, payload bytes) of a buffer."""

    def __init__(self, buffer, order, where):
        self.buffer, self.order, self.where, self.offset = buffer, order, where, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.offset + 8 > len(self.buffer):
            if self.offset < len(self.buffer) and any(self.buffer[self.offset:]):
                raise DatasetFormatError(f"{self.where}: truncated data element at byte {self.offset}")
            raise StopIteration
        first, second = struct.unpack_from(self.order + "II", self.buffer, self.offset)
        if first >> 16:  # small data element: type and size share the first word, data in the second
            kind, size = first & 0xFFFF, first >> 16
            if size > 4:
                raise DatasetFormatError(f"{self.where}: bad small data element at byte {self.offset}")
            payload = self.buffer[self.offset + 4:self.offset + 4 + size]
            self.offset += 8
            return kind, payload
        kind, size = first, second
        start = self.offset + 8
        if start + size > len(self.buffer):
            raise DatasetFormatError(f"{self.where}: data element at byte {self.offset} needs {size} bytes, "
                                     f"{len(self.buffer) - start} left (truncated file?)")
        self.offset = start + size + (0 if kind == COMPRESSED else -size % 8)
        return kind, self.buffer[start:start + size]


def _next(parts, where):
    try:
        return next(parts)
    except StopIteration:
        raise DatasetFormatError(f"{where}: a matrix element ends early") from None


def _numbers(kind, payload, order, where):
    if kind not in NUMERIC_TYPES:
        raise DatasetFormatError(f"{where}: expected numeric data, got element type {kind}")
    return np.frombuffer(payload, dtype=np.dtype(NUMERIC_TYPES[kind]).newbyteorder(order))


def _matrix(payload, order, where):
    """One miMATRIX element -> (name, value)."""
    if not payload:  # an empty element, e.g. an unset cell
        return "", np.zeros((0, 0))
    parts = _Elements(payload, order, where)
    flags = _numbers(*_next(parts, where), order, where)
    dims = tuple(int(d) for d in _numbers(*_next(parts, where), order, where))
    kind, name_bytes = _next(parts, where)
    name = bytes(name_bytes).decode("ascii", "replace")
    where = f"{where}, variable {name!r}" if name else where
    matlab_class, flags = int(flags[0]) & 0xFF, int(flags[0])
    if matlab_class in CLASS_NAMES or flags & COMPLEX_FLAG:
        raise DatasetFormatError(f"{where}: {CLASS_NAMES.get(matlab_class, 'complex')} arrays are not supported")
    count = math.prod(dims)
    if matlab_class == CELL_CLASS:
        cells = np.empty(count, dtype=object)
        for index in range(count):
            element_kind, element = _next(parts, where)
            if element_kind != MATRIX:
                raise DatasetFormatError(f"{where}: cell {index} is not a matrix element")
            cells[index] = _matrix(element, order, where)[1]
        return name, cells.reshape(dims, order="F")
    kind, data = _next(parts, where)
    if matlab_class == CHAR_CLASS:
        if kind in (UTF8, UTF16, UTF32):
            suffix = "" if kind == UTF8 else "-le" if order == "<" else "-be"
            encoding = {UTF8: "utf-8", UTF16: "utf-16", UTF32: "utf-32"}[kind] + suffix
            try:
                codes = np.array([ord(c) for c in bytes(data).decode(encoding)], dtype=np.uint32)
            except UnicodeDecodeError as error:
                raise DatasetFormatError(f"{where}: characters are not valid {encoding} ({error.reason})") from error
        else:
            codes = _numbers(kind, data, order, where)
        if codes.size != count:
            raise DatasetFormatError(f"{where}: {codes.size} characters for dimensions {dims}")
        if count == 0:
            return name, ""
        text = "".join(map(chr, codes.tolist()))
        if dims[0] == 1:
            return name, text
        rows = np.array(list(text), dtype="<U1").reshape(dims[0], -1, order="F")
        return name, ["".join(row) for row in rows]
    if matlab_class not in NUMERIC_CLASSES:
        raise DatasetFormatError(f"{where}: unsupported array class {matlab_class}")
    values = _numbers(kind, data, order, where)
    if values.size != count:
        raise DatasetFormatError(f"{where}: {values.size} values for dimensions {dims}")
    dtype = bool if flags & LOGICAL_FLAG else NUMERIC_CLASSES[matlab_class]
    return name, values.astype(dtype).reshape(dims, order="F")


def read_mat(path):
    """The variables of a level-5 MAT-file as `{name: value}`: numeric arrays keep MATLAB's shape, a char row is a
    `str` (a char matrix a list of row strings), a cell array is a numpy object array of such values."""
    path = Path(path)
    buffer = path.read_bytes()
    if len(buffer) < 128:
        raise DatasetFormatError(f"{path} is too short to be a level-5 MAT-file ({len(buffer)} bytes)")
    if buffer[:19] == b"MATLAB 7.3 MAT-file" or buffer[512:516] == b"\x89HDF":
        raise DatasetFormatError(f"{path} is a MATLAB 7.3 (HDF5) file; save it with `save(..., '-v7')` or read it "
                                 "with h5py")
    indicator = buffer[126:128]
    if indicator not in (b"IM", b"MI"):
        raise DatasetFormatError(f"{path} is not a level-5 MAT-file (no endian indicator in its header)")
    order = "<" if indicator == b"IM" else ">"
    variables = {}
    for kind, payload in _Elements(memoryview(buffer)[128:], order, str(path)):
        if kind == COMPRESSED:
            try:
                payload = zlib.decompress(payload)
            except zlib.error as error:
                raise DatasetFormatError(f"{path}: a compressed variable is corrupt ({error})") from error
            kind, payload = _next(_Elements(payload, order, str(path)), str(path))
        if kind != MATRIX:
            raise DatasetFormatError(f"{path}: unexpected top-level element type {kind}")
        name, value = _matrix(payload, order, str(path))
        variables[name] = value
    return variables
