#!/usr/bin/env python3
"""Reference timing on a GPU: the SDXL 1.0 base UNet in diffusers (the real architecture, random weights), fp16,
eager (diffusers' default attention processor: torch's scaled_dot_product_attention where torch has it), the
counterpart of `bench/bin/bench_sdxl_unet --device cuda --dtype f16` (issue 9 "Speed", GPU). `make gpu-check` runs
both in the same call (scripts/gpu_check.sh).

One UNet call = one noise prediction for a batch (batch 2 = the cond/uncond pair of classifier-free guidance).
Prints: ms per call (median of --reps calls after one warm-up, torch.cuda.synchronize around each), and the peak
memory torch allocated (torch.cuda.max_memory_allocated) and reserved.
Needs torch with CUDA and diffusers (PYTHONPATH of ../shared/anchors/sdxl_reference_env.sh's folder; the
configuration is the same as ../shared/anchors/sdxl_unet_cpu_bench.py's).

  python3 sdxl_unet_gpu_bench.py --res 1024 --batch 2 --reps 10
"""
import argparse, statistics, sys, time

import torch
from diffusers import UNet2DConditionModel

# The SDXL 1.0 base UNet configuration (unet/config.json of stable-diffusion-xl-base-1.0).
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIP sdxl_unet_gpu_bench: torch sees no CUDA device", flush=True)
        return 1
    dev = torch.device("cuda")
    torch.manual_seed(0)
    t0 = time.time()
    # build on the GPU when torch can (torch >= 2.0: a device context), else on the CPU and move
    if hasattr(torch, "device") and hasattr(torch.device, "__enter__"):
        with dev:
            unet = UNet2DConditionModel(**SDXL_UNET)
    else:
        unet = UNet2DConditionModel(**SDXL_UNET)
    unet = unet.to(device=dev, dtype=torch.float16).eval()
    torch.cuda.synchronize()
    n = sum(p.numel() for p in unet.parameters())
    print(f"diffusers sdxl unet: {n:,} parameters, built in {time.time() - t0:.1f} s, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name(0)}, fp16", flush=True)
    h = a.res // 8
    dt = torch.float16
    x = torch.randn(a.batch, 4, h, h, device=dev, dtype=dt)
    t = torch.full((a.batch,), 500.0, device=dev)
    ctx = torch.randn(a.batch, 77, 2048, device=dev, dtype=dt)
    add = {"text_embeds": torch.randn(a.batch, 1280, device=dev, dtype=dt),
           "time_ids": torch.tensor([[a.res, a.res, 0, 0, a.res, a.res]] * a.batch, device=dev, dtype=dt)}
    torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.no_grad():
        for i in range(a.reps + 1):
            torch.cuda.synchronize()
            s = time.time()
            unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs=add)
            torch.cuda.synchronize()
            if i:
                times.append(time.time() - s)
    gib = 1024.0 ** 3
    print(f"diffusers res {a.res} ({h}x{h} latent) batch {a.batch} fp16: {1e3 * statistics.median(times):.1f} ms "
          f"per UNet call (min {1e3 * min(times):.1f}, max {1e3 * max(times):.1f}, {a.reps} calls); peak memory "
          f"allocated {torch.cuda.max_memory_allocated() / gib:.2f} GiB, reserved "
          f"{torch.cuda.max_memory_reserved() / gib:.2f} GiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
