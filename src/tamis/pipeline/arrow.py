"""Arrow arrays from the Python lists a batch's signals come in, without importing pandas.

`pa.array(list)` imports pandas the first time it runs, only to ask whether the list is a pandas
object: 0.1 s and ~60 MB in every `tamis clean` (pandas is installed wherever the training
extras are), at the end of the run, where nothing else goes on. Here the signal types (booleans,
integers, floats, strings) are built from numpy buffers with `pa.Array.from_buffers`, which
never asks; the result is the array `pa.array(values, type)` gives (tested). Values of another
kind than the type (a float in an integer column, a number in a string column), and other types,
go to `pa.array`, which says what is wrong with them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_NUMPY = {
    "bool": np.bool_,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "float": np.float32,
    "double": np.float64,
}
# the kinds numpy infers for a list that `pa.array` converts to the type as numpy does (integers
# into a float type only where the float holds them exactly, as pyarrow demands)
_KINDS = {"b": "b", "i": "iu", "u": "iu", "f": "fiu"}
_EXACT = {np.float32: 2**24, np.float64: 2**53}


def arrow_array(values: list[Any], typ: Any) -> Any:
    """`pa.array(values, type=typ)` for boolean, integer, float and string types."""
    import pyarrow as pa

    n = len(values)
    if n == 0:
        return pa.nulls(0, typ)
    if pa.types.is_string(typ):
        return _strings(values, n) or pa.array(values, typ)
    target = _NUMPY.get(str(typ))
    if target is None:
        return pa.array(values, typ)
    arr = np.array(values)  # Python numbers: bool, int64 or float64; with a None: object
    valid = None
    if arr.dtype == object:
        if all(v is None for v in values):
            return pa.nulls(n, typ)
        present = [v for v in values if v is not None]
        arr = np.array(present)
        valid = np.fromiter((v is not None for v in values), bool, n)
    kind = np.dtype(target).kind
    if arr.dtype.kind not in _KINDS[kind] or arr.ndim != 1:
        return pa.array(values, typ)
    if kind in "iu" and len(arr):
        info = np.iinfo(target)
        if arr.min() < info.min or arr.max() > info.max:
            return pa.array(values, typ)  # out of range: pyarrow's error
        if any(type(v) is bool for v in values):
            return pa.array(values, typ)  # numpy reads True as 1, pyarrow refuses it
    if (
        kind == "f"
        and arr.dtype.kind in "iu"
        and len(arr)
        and (np.abs(arr).max() > _EXACT[target] or any(type(v) is bool for v in values))
    ):
        return pa.array(values, typ)
    with np.errstate(over="ignore"):  # a double past float32's range: inf, as pyarrow gives
        data = arr.astype(target)
    if valid is not None:
        full = np.zeros(n, target)
        full[valid] = data
        data = full
    raw = np.packbits(data, bitorder="little") if kind == "b" else np.ascontiguousarray(data)
    buffers = [_bitmap(valid), pa.py_buffer(raw)]
    return pa.Array.from_buffers(typ, n, buffers, null_count=-1 if valid is not None else 0)


def _strings(values: list[Any], n: int) -> Any:
    """A string array, or None when a value is not a string (pa.array decides those)."""
    import pyarrow as pa

    if not all(v is None or type(v) is str for v in values):
        return None
    try:
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    except UnicodeEncodeError:  # a lone surrogate: pyarrow's error
        return None
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, n), out=offsets[1:])
    if offsets[-1] >= 2**31:
        return None  # larger than a string array holds: pa.array gives a chunked one
    missing = [v is None for v in values]
    valid = np.logical_not(missing) if any(missing) else None
    return pa.Array.from_buffers(
        pa.string(),
        n,
        [_bitmap(valid), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded))],
        null_count=-1 if valid is not None else 0,
    )


def _bitmap(valid: np.ndarray | None) -> Any:
    import pyarrow as pa

    return None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
