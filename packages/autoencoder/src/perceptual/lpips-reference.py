"""Test reference: LPIPS (VGG, v0.1) in float64 numpy, written from the lpips package's definition
(lpips/lpips.py, lpips/pretrained_networks.py, lpips/__init__.py normalize_tensor) in PyTorch's
NCHW / OIHW layout, independently of the tfjs code under test.

argv: manifest.json tensors.bin. The manifest names float32 tensors in the binary (offset in
elements, shape): the lpips state dict, `x` and `y` (NHWC in [-1, 1]), and lists `coords`
[b, h, w, c] of y at which to take central differences with step `step`. Prints JSON
{"distance": [...], "grad": [...]}.
"""

import json
import sys

import numpy as np

VGG = [  # (state-dict name, slice): VGG16 features convs up to relu5_3
    ("net.slice1.0", 0), ("net.slice1.2", 0),
    ("net.slice2.5", 1), ("net.slice2.7", 1),
    ("net.slice3.10", 2), ("net.slice3.12", 2), ("net.slice3.14", 2),
    ("net.slice4.17", 3), ("net.slice4.19", 3), ("net.slice4.21", 3),
    ("net.slice5.24", 4), ("net.slice5.26", 4), ("net.slice5.28", 4),
]
SHIFT = np.array([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1)
SCALE = np.array([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1)


def conv3x3(h, w, b):
    """PyTorch Conv2d(k=3, padding=1): cross-correlation by im2col."""
    n, c, height, width = h.shape
    p = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([p[:, :, i:i + height, j:j + width] for i in range(3) for j in range(3)], axis=2)
    cols = cols.transpose(0, 3, 4, 1, 2).reshape(n * height * width, c * 9)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(n, height, width, -1).transpose(0, 3, 1, 2)


def max_pool(h):
    n, c, height, width = h.shape
    h = h[:, :, : height // 2 * 2, : width // 2 * 2]
    return h.reshape(n, c, height // 2, 2, width // 2, 2).max(axis=(3, 5))


def features(sd, img):
    """The five taps, each unit-normalised over channels; img NCHW in [-1, 1]."""
    h = (img - SHIFT) / SCALE
    taps = []
    for s in range(5):
        if s > 0:
            h = max_pool(h)
        for name, slice_ in VGG:
            if slice_ == s:
                h = np.maximum(conv3x3(h, sd[name + ".weight"], sd[name + ".bias"]), 0)
        norm = np.sqrt((h ** 2).sum(axis=1, keepdims=True))
        taps.append(h / (norm + 1e-10))
    return taps


def distance(sd, fx, fy):
    total = 0
    for k in range(5):
        d = (fx[k] - fy[k]) ** 2
        lin = sd["lin%d.model.1.weight" % k][:, :, 0, 0]  # [1, C]
        total = total + np.einsum("oc,nchw->nohw", lin, d).mean(axis=(2, 3))[:, 0]
    return total


def main():
    manifest = json.load(open(sys.argv[1]))
    buf = np.fromfile(sys.argv[2], dtype="<f4")
    t = {}
    for e in manifest["tensors"]:
        size = int(np.prod(e["shape"]))
        t[e["name"]] = buf[e["offset"]:e["offset"] + size].reshape(e["shape"]).astype(np.float64)
    x = t.pop("x").transpose(0, 3, 1, 2)
    y = t.pop("y").transpose(0, 3, 1, 2)
    fx = features(t, x)
    dist = distance(t, fx, features(t, y))
    step = manifest["step"]
    grad = []
    for b, i, j, c in manifest["coords"]:
        fxb = [f[b:b + 1] for f in fx]
        plus, minus = y[b:b + 1].copy(), y[b:b + 1].copy()
        plus[0, c, i, j] += step
        minus[0, c, i, j] -= step
        diff = distance(t, fxb, features(t, plus)) - distance(t, fxb, features(t, minus))
        grad.append(float(diff[0] / (2 * step)))
    print(json.dumps({"distance": dist.tolist(), "grad": grad}))


main()
