#!/usr/bin/env python3
"""torch_cpu_bench.py -- PyTorch eager fp32 CPU throughput of the paper's ScoreNet, to set beside
bench/bin/bench_scorenet (same network: tests/reference/scorenet_ref.py; same measurements):
  train   one DSM training step (forward + backward + Adam lr 1e-4), batch 200, images/s
  forward score evaluation without autograd, batch 500, images/s
  vjp     score + input gradient grad_x <s, e> (the NLL / Hutchinson cost unit), batch 500, evaluations/s
Threads: torch.set_num_threads(2) by default (this machine has 2 cores); override with --threads N.
Each measurement: one warm-up call, then repeats until --seconds (default 8) have passed (at least 2 calls).
Prints one JSON object on stdout.
Usage: torch_cpu_bench.py [--threads N] [--seconds S] [--train-batch B] [--eval-batch B]
"""
import argparse, json, math, os, sys, time
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scorenet_ref import ScoreNet, marginal_std  # noqa: E402


def timed(fn, seconds):
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if n >= 2 and dt >= seconds:
            return n, dt


def backend_info():
    """Which BLAS and oneDNN this torch uses: its build configuration, and the BLAS library actually mapped into
    the process after a matmul (Debian's torch links libblas.so.3, which the alternatives system points at the
    reference BLAS or at OpenBLAS)."""
    cfg = torch.__config__.show()
    info = {k: v for k, v in (l.strip().split("=", 1) for l in cfg.replace(",", "\n").splitlines() if "=" in l)}
    a = torch.randn(64, 64)
    (a @ a).sum().item()
    loaded = []
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if ("blas" in p or "mkl" in p or "dnnl" in p) and p not in loaded:
                loaded.append(p)
    return {"blas_info": info.get("BLAS_INFO", "?"), "blas_loaded": " ".join(os.path.realpath(p) for p in loaded) or "?",
            "mkldnn_built": info.get("USE_MKLDNN", "?"), "mkldnn_available": torch.backends.mkldnn.is_available()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--train-batch", type=int, default=200)
    ap.add_argument("--eval-batch", type=int, default=500)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = ScoreNet()
    res = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "params_trainable": sum(p.numel() for p in m.parameters() if p.requires_grad)}
    res.update(backend_info())
    print("bench-torch: BLAS %s (loaded: %s); oneDNN/MKLDNN built %s, available %s; OPENBLAS_CORETYPE=%s "
          "OPENBLAS_L2_SIZE=%s" % (res["blas_info"], res["blas_loaded"], res["mkldnn_built"], res["mkldnn_available"],
                                   os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
                                   os.environ.get("OPENBLAS_L2_SIZE", "(unset)")), file=sys.stderr)

    B = a.train_batch
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    x = torch.rand(B, 1, 28, 28)

    def train_step():
        t = torch.rand(B) * (1.0 - 1e-5) + 1e-5
        z = torch.randn_like(x)
        std = marginal_std(t)[:, None, None, None]
        s = m(x + z * std, t)
        loss = torch.mean(torch.sum((s * std + z) ** 2, dim=(1, 2, 3)))
        opt.zero_grad()
        loss.backward()
        opt.step()

    n, dt = timed(train_step, a.seconds)
    res["train_b%d_img_per_s" % B] = round(n * B / dt, 1)

    E = a.eval_batch
    xe = torch.randn(E, 1, 28, 28)
    te = torch.rand(E) * (1.0 - 1e-5) + 1e-5
    ee = torch.randn_like(xe)

    def fwd():
        with torch.no_grad():
            m(xe, te)

    n, dt = timed(fwd, a.seconds)
    res["forward_b%d_img_per_s" % E] = round(n * E / dt, 1)

    def vjp():
        xx = xe.clone().requires_grad_(True)
        s = m(xx, te)
        torch.autograd.grad(torch.sum(s * ee), xx)

    n, dt = timed(vjp, a.seconds)
    res["vjp_b%d_evals_per_s" % E] = round(n * E / dt, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
