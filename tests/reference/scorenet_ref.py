#!/usr/bin/env python3
"""scorenet_ref.py -- PyTorch reference for common/nn/scorenet.c (the paper's ScoreNet, REFERENCE.md).

Why: our C ScoreNet must compute exactly what the authors' PyTorch model computes (src/model_EMNIST.py ScoreNet,
Song's MNIST U-Net; paper Sec. 5.1 / App. G). This script rebuilds that network (written from the architecture
description, same state_dict names), loads OUR safetensors checkpoint, and evaluates on OUR inputs:
  * the forward score s(t, x_t) (output divided by the VE marginal std(t), sigma = 25),
  * the DSM loss (paper eq. 5 as the code has it: mean_b sum (s std + z)^2 with x_t = x0 + std z) and its
    gradient with respect to every trainable parameter,
  * the input gradient grad_x <s(t, x), e> at x = x_t (the vector-Jacobian product the Hutchinson trace uses).
It does so twice: in float32 (what PyTorch eager gives) and in float64 (a near-exact reference), and writes
both to a safetensors file that the C side (bench_scorenet --compare) reads.

Usage: scorenet_ref.py DIR      reads DIR/ckpt.safetensors, DIR/inputs.safetensors; writes DIR/torch.safetensors
Needs only torch (safetensors package used when installed; otherwise the format is parsed here).
"""
import json, math, os, struct, sys
import torch
import torch.nn as nn

SIGMA = 25.0


# ---------------------------------------------------------------- safetensors (format: 8-byte LE header length,
# JSON header {name: {dtype, shape, data_offsets}}, optional __metadata__, then the raw little-endian data)
def read_safetensors(path):
    try:
        from safetensors import safe_open
        out = {}
        with safe_open(path, framework="pt") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
        return out
    except ImportError:
        pass
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    hdr = json.loads(buf[8:8 + n].decode("utf-8"))
    hdr.pop("__metadata__", None)
    data = buf[8 + n:]
    dt = {"F32": torch.float32, "F64": torch.float64}
    out = {}
    for k, v in hdr.items():
        b, e = v["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=dt[v["dtype"]]) if e > b else torch.zeros(0, dtype=dt[v["dtype"]])
        out[k] = t.reshape(v["shape"]).clone()
    return out


def write_safetensors(path, tensors):
    hdr, blobs, off = {}, [], 0
    for k, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.float64:
            dtype, fmt = "F64", "d"
        else:
            t, dtype, fmt = t.to(torch.float32), "F32", "f"
        b = struct.pack("<%d%s" % (t.numel(), fmt), *t.flatten().tolist())
        hdr[k] = {"dtype": dtype, "shape": list(t.shape) if t.dim() else [1], "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ---------------------------------------------------------------- the network (paper's ScoreNet)
def marginal_std(t):
    return torch.sqrt((SIGMA ** (2.0 * t) - 1.0) / 2.0 / math.log(SIGMA))


def swish(x):
    return x * torch.sigmoid(x)


class FourierEmbed(nn.Module):          # state_dict key: embed.0.W (fixed, not trained)
    def __init__(self, dim, scale=30.0):
        super().__init__()
        self.W = nn.Parameter(torch.randn(dim // 2) * scale, requires_grad=False)

    def forward(self, t):
        ph = t[:, None] * self.W[None, :] * 2 * math.pi
        return torch.cat([torch.sin(ph), torch.cos(ph)], dim=-1)


class Dense(nn.Module):                 # keys: denseK.dense.weight / .bias; output broadcast over H, W
    def __init__(self, i, o):
        super().__init__()
        self.dense = nn.Linear(i, o)

    def forward(self, e):
        return self.dense(e)[:, :, None, None]


class ScoreNet(nn.Module):
    def __init__(self, ch=(32, 64, 128, 256), ed=256):
        super().__init__()
        self.embed = nn.Sequential(FourierEmbed(ed), nn.Linear(ed, ed))
        enc = [(1, ch[0], 1, 4), (ch[0], ch[1], 2, 32), (ch[1], ch[2], 2, 32), (ch[2], ch[3], 2, 32)]
        for k, (i, o, s, g) in enumerate(enc, 1):
            setattr(self, "conv%d" % k, nn.Conv2d(i, o, 3, stride=s, bias=False))
            setattr(self, "dense%d" % k, Dense(ed, o))
            setattr(self, "gnorm%d" % k, nn.GroupNorm(g, o))
        self.tconv4 = nn.ConvTranspose2d(ch[3], ch[2], 3, stride=2, bias=False)
        self.dense5, self.tgnorm4 = Dense(ed, ch[2]), nn.GroupNorm(32, ch[2])
        self.tconv3 = nn.ConvTranspose2d(2 * ch[2], ch[1], 3, stride=2, bias=False, output_padding=1)
        self.dense6, self.tgnorm3 = Dense(ed, ch[1]), nn.GroupNorm(32, ch[1])
        self.tconv2 = nn.ConvTranspose2d(2 * ch[1], ch[0], 3, stride=2, bias=False, output_padding=1)
        self.dense7, self.tgnorm2 = Dense(ed, ch[0]), nn.GroupNorm(32, ch[0])
        self.tconv1 = nn.ConvTranspose2d(2 * ch[0], 1, 3, stride=1)

    def forward(self, x, t):
        e = swish(self.embed(t))
        h1 = swish(self.gnorm1(self.conv1(x) + self.dense1(e)))
        h2 = swish(self.gnorm2(self.conv2(h1) + self.dense2(e)))
        h3 = swish(self.gnorm3(self.conv3(h2) + self.dense3(e)))
        h4 = swish(self.gnorm4(self.conv4(h3) + self.dense4(e)))
        h = swish(self.tgnorm4(self.tconv4(h4) + self.dense5(e)))
        h = swish(self.tgnorm3(self.tconv3(torch.cat([h, h3], 1)) + self.dense6(e)))
        h = swish(self.tgnorm2(self.tconv2(torch.cat([h, h2], 1)) + self.dense7(e)))
        h = self.tconv1(torch.cat([h, h1], 1))
        return h / marginal_std(t)[:, None, None, None]


def evaluate(ckpt, inp, dtype):
    """forward score, DSM loss + parameter gradients, input gradient; all in `dtype`."""
    m = ScoreNet()
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt.items() if not k.startswith("ema.")}
    m.load_state_dict(sd, strict=True)
    m = m.to(dtype)
    ntrain = sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert ntrain == 1115297, ntrain
    x0, t, z, e = (inp[k].to(dtype) for k in ("x0", "t", "z", "e"))
    std = marginal_std(t)[:, None, None, None]
    xt = x0 + std * z
    out = {}
    # DSM loss and parameter gradients
    m.zero_grad()
    s = m(xt, t)
    loss = torch.mean(torch.sum((s * std + z) ** 2, dim=(1, 2, 3)))
    loss.backward()
    out["score"] = s.detach()
    out["loss"] = loss.detach().reshape(1)
    for name, p in m.named_parameters():
        if p.requires_grad:
            out["grad." + name] = p.grad.detach().clone()
    # input gradient of <s(t, x), e> at x = x_t
    xx = xt.detach().clone().requires_grad_(True)
    sv = m(xx, t)
    (gx,) = torch.autograd.grad(torch.sum(sv * e), xx)
    out["gx"] = gx.detach()
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: scorenet_ref.py DIR")
    d = sys.argv[1]
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    ckpt = read_safetensors(os.path.join(d, "ckpt.safetensors"))
    inp = read_safetensors(os.path.join(d, "inputs.safetensors"))
    res = {}
    for tag, dt in (("f32", torch.float32), ("f64", torch.float64)):
        for k, v in evaluate(ckpt, inp, dt).items():
            res[tag + "." + k] = v.to(torch.float64)
    write_safetensors(os.path.join(d, "torch.safetensors"), res)
    print("scorenet_ref: torch %s, batch %d, loss f32 %.9g f64 %.12g -> %s" % (
        torch.__version__, inp["t"].numel(), res["f32.loss"].item(), res["f64.loss"].item(),
        os.path.join(d, "torch.safetensors")))


if __name__ == "__main__":
    main()
