"""Kiln's checkpoint helper for PyTorch training scripts.

    import kiln_ckpt
    kiln_ckpt.save(model, step)          # every k steps, and at step 0
    step = kiln_ckpt.load(model, path)   # resume from a checkpoint (a verifier's replay)

Checkpoints go to $KILN_CKPT_DIR (default ./ckpt) as step-NNNNNN.kckpt in Kiln's format:
b"KILNCKPT1\\n", one JSON header line {"step", "prev", "engine", "tensors": [{"name",
"shape"}]}, then the float32 values little-endian in header order. "prev" is the SHA-256
of the previous checkpoint file (64 zeros at step 0), so the checkpoints form a hash chain
a verifier can replay segment by segment.
"""
import hashlib
import json
import os

import torch

MAGIC = b"KILNCKPT1\n"
ZERO = "0" * 64

_prev = ZERO


def _dir():
    d = os.environ.get("KILN_CKPT_DIR", "ckpt")
    os.makedirs(d, exist_ok=True)
    return d


def path_of(step):
    return os.path.join(_dir(), "step-%06d.kckpt" % step)


def encode(model, step, prev):
    sd = model.state_dict()
    header = {"step": step, "prev": prev, "engine": "pytorch",
              "tensors": [{"name": k, "shape": list(v.shape)} for k, v in sd.items()]}
    body = b"".join(v.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4").tobytes() for v in sd.values())
    return MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n" + body


def save(model, step):
    """Write the checkpoint of model at step, chained to the one saved (or loaded) before."""
    global _prev
    if step == 0:
        _prev = ZERO
    data = encode(model, step, _prev)
    p = path_of(step)
    with open(p + ".tmp", "wb") as f:
        f.write(data)
    os.replace(p + ".tmp", p)
    _prev = hashlib.sha256(data).hexdigest()
    return p


def load(model, path):
    """Load a Kiln checkpoint into model; the next save chains to it. Returns its step."""
    global _prev
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise ValueError("%s: not a Kiln checkpoint" % path)
    nl = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC):nl])
    off = nl + 1
    sd = {}
    for t in header["tensors"]:
        n = 1
        for d in t["shape"]:
            n *= d
        a = np.frombuffer(data, dtype="<f4", count=n, offset=off).reshape(t["shape"])
        sd[t["name"]] = torch.from_numpy(a.copy())
        off += 4 * n
    if off != len(data):
        raise ValueError("%s: %d bytes after the tensors" % (path, len(data) - off))
    model.load_state_dict(sd)
    _prev = hashlib.sha256(data).hexdigest()
    return header["step"]
