"""Header: a fast reader of a GGUF file's key/values and tensor infos (GGUF v2/v3, little-endian).

    from agentdistill.lm.gguf_header import Header
    Header("model.gguf").get("general.architecture")           # 'llama'
    Header("model.gguf", stop_at="general.name").get("general.name")   # stops reading at that key

Why not gguf.GGUFReader: it builds numpy views of every token and merge string (~100k), which takes seconds for
one header; this reads the same fields in a fraction of that, and can stop at one key (the export cache check).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8",
          12: "<f8"}
_STRING, _ARRAY = 8, 9


class Header:
    """The metadata of a GGUF file: `fields` {key: (value type, array item type or None, value)} in file order,
    `tensors` [(name, shape as numpy/HF order, ggml type id)] in file order."""

    def __init__(self, path: str | os.PathLike, *, stop_at: str | None = None):
        import mmap
        import struct

        self.path = Path(path)
        self.fields: dict[str, tuple[int, int | None, object]] = {}
        self.tensors: list[tuple[str, tuple[int, ...], int]] = []
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[:4] != b"GGUF":
                raise ValueError(f"{self.path} is not a GGUF file")
            version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
            if version not in (2, 3):
                raise ValueError(f"{self.path}: GGUF version {version} (or big-endian) is not supported here")
            pos = 24

            def string(pos):
                (n,) = struct.unpack_from("<Q", buf, pos)
                return buf[pos + 8:pos + 8 + n].decode("utf-8"), pos + 8 + n

            for _ in range(n_kv):
                key, pos = string(pos)
                (vtype,) = struct.unpack_from("<I", buf, pos)
                pos += 4
                sub = None
                if vtype == _STRING:
                    value, pos = string(pos)
                elif vtype == _ARRAY:
                    sub, n = struct.unpack_from("<IQ", buf, pos)
                    pos += 12
                    if sub == _STRING:
                        value = []
                        for _ in range(n):
                            item, pos = string(pos)
                            value.append(item)
                    elif sub in _NUMPY:
                        dtype = np.dtype(_NUMPY[sub])
                        value = np.frombuffer(buf, dtype, n, pos).tolist()
                        pos += n * dtype.itemsize
                    else:
                        raise ValueError(f"{self.path}: key {key!r} is an array of type {sub} (nested arrays?)")
                else:
                    (value,) = struct.unpack_from(_SCALARS[vtype], buf, pos)
                    pos += struct.calcsize(_SCALARS[vtype])
                self.fields[key] = (vtype, sub, value)
                if key == stop_at:
                    return
            if stop_at is not None:
                return
            for _ in range(n_tensors):
                name, pos = string(pos)
                (n_dims,) = struct.unpack_from("<I", buf, pos)
                dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
                ttype, _offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
                pos += 4 + 8 * n_dims + 12
                self.tensors.append((name, tuple(int(d) for d in reversed(dims)), int(ttype)))

    def get(self, key: str, default=None):
        entry = self.fields.get(key)
        return default if entry is None else entry[2]


