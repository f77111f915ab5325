"""sdxl_st: a minimal safetensors reader/writer for the SDXL reference scripts (the reference environment's
`safetensors` package is a stand-in that refuses to work). Format: u64 header length, JSON header, data."""
import json
import struct

import numpy as np
import torch

_DT = {torch.float32: ("F32", np.float32), torch.float16: ("F16", np.float16)}
_BACK = {"F32": (np.float32, torch.float32), "F16": (np.float16, torch.float16)}


def save(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        code, npdt = _DT[t.dtype]
        b = t.numpy().astype(npdt).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        npdt, tdt = _BACK[e["dtype"]]
        b, en = e["data_offsets"]
        arr = np.frombuffer(data[b:en], dtype=npdt).reshape(e["shape"]).copy()
        out[name] = torch.from_numpy(arr)
    return out
