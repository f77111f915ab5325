"""sdxl_pipe_ref: the reference side of the SDXL pipeline checks (issue 9): runs diffusers v0.25.1 on the CPU
(reference environment: tests/reference/README.md, /work/shared/anchors/sdxl_reference_env.sh) and writes the
small fixtures under tests/fixtures/sdxl/ that the C tests compare with, without Python, on every `make test`.

  sdxl_pipe_ref.py euler DIR   EulerDiscreteScheduler (SDXL config): time steps, sigmas for 10/50/100 steps,
                               scale_model_input + step (epsilon, v), and CFG with rescale_noise_cfg
  sdxl_pipe_ref.py vae DIR     a tiny random AutoencoderKL: weights in diffusers layout (fp32) and single-file ldm
                               layout (fp16, checked by diffusers' own convert_ldm_vae_checkpoint), latents and
                               the decoded images of both
  sdxl_pipe_ref.py lora DIR    the tiny SDXL-structured UNet of tests/reference/sdxl_unet_ref.py (its TINY config),
                               random fp16 base weights, LoRAs in diffusers and kohya formats (linear, 1x1 and 3x3
                               conv layers), and the weights after diffusers' own LoRA fusing (load_lora_into_unet +
                               fuse_lora, the non-PEFT path of v0.25.1)
"""
import ast
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdxl_st  # noqa: E402

SDXL_SCHED = {
    "_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.19.0.dev0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear",
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None,
    "use_karras_sigmas": False,
}


def diffusers_function(module_file, name, helpers=()):
    """A top-level function of a diffusers source file (with the top-level helpers it calls), without importing
    the file: the SDXL pipeline and convert_from_ckpt modules import transformers, which the reference environment
    does not have. The functions run as diffusers wrote them."""
    import diffusers
    path = os.path.join(os.path.dirname(diffusers.__file__), module_file)
    src = open(path).read()
    want = {name, *helpers}
    nodes = [n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name in want]
    if {n.name for n in nodes} != want:
        raise KeyError(want - {n.name for n in nodes})
    ns = {"torch": torch}
    exec(compile(ast.Module(nodes, []), path, "exec"), ns)
    return ns[name]


def fl(t):
    return [float(x) for x in t.reshape(-1).tolist()]


def euler(out):
    from diffusers import EulerDiscreteScheduler
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "scheduler_config.json"), "w") as f:
        json.dump(SDXL_SCHED, f, indent=2)
    ref = {"schedules": {}}
    for n in (10, 50, 100):
        s = EulerDiscreteScheduler.from_config(SDXL_SCHED)
        s.set_timesteps(n)
        ref["schedules"][str(n)] = {"timesteps": fl(s.timesteps), "sigmas": fl(s.sigmas),
                                    "init_noise_sigma": float(s.init_noise_sigma)}
    g = torch.Generator().manual_seed(0)
    for key, pred in (("step_epsilon", "epsilon"), ("step_v", "v_prediction")):
        x = torch.randn(1, 4, 4, 4, generator=g) * 3
        mo = torch.randn(1, 4, 4, 4, generator=g)
        checks = []
        for i in (0, 4, 9):
            s = EulerDiscreteScheduler.from_config(dict(SDXL_SCHED, prediction_type=pred))
            s.set_timesteps(10)
            t = s.timesteps[i]
            s._step_index = i
            scaled = s.scale_model_input(x.clone(), t)
            s._step_index = i
            nxt = s.step(mo, t, x.clone()).prev_sample
            checks.append({"i": i, "scaled": fl(scaled), "next": fl(nxt)})
        ref[key] = {"n": 10, "x": fl(x), "model_output": fl(mo), "checks": checks}
    rescale_noise_cfg = diffusers_function("pipelines/stable_diffusion_xl/pipeline_stable_diffusion_xl.py",
                                           "rescale_noise_cfg")
    u = torch.randn(2, 4, 3, 5, generator=g)
    c = u + 0.3 * torch.randn(2, 4, 3, 5, generator=g)
    gs, r = 5.0, 0.7
    plain = u + gs * (c - u)
    resc = rescale_noise_cfg(plain.clone(), c, guidance_rescale=r)
    ref["cfg"] = {"B": 2, "scale": gs, "rescale": r, "uncond": fl(u), "cond": fl(c), "out_plain": fl(plain),
                  "out_rescaled": fl(resc)}
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)
    print("euler: wrote", out)


TINY_VAE = {
    "_class_name": "AutoencoderKL", "_diffusers_version": "0.25.1", "act_fn": "silu",
    "block_out_channels": [8, 16, 32], "down_block_types": ["DownEncoderBlock2D"] * 3, "force_upcast": True,
    "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 4, "out_channels": 3,
    "sample_size": 32, "scaling_factor": 0.13025, "up_block_types": ["UpDecoderBlock2D"] * 3,
}


def vae_to_ldm(sd, nblocks):
    """diffusers AutoencoderKL names -> original (ldm) names, the inverse of convert_ldm_vae_checkpoint."""
    out = {}
    leaf = [("conv_shortcut.", "nin_shortcut."), ("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."),
            ("to_v.", "v."), ("to_out.0.", "proj_out.")]
    for k, v in sd.items():
        p = k.split(".")
        n = k
        if p[0] in ("encoder", "decoder"):
            part, rest = p[0], ".".join(p[1:])
            if rest.startswith("conv_norm_out."):
                rest = "norm_out." + rest[len("conv_norm_out."):]
            elif rest.startswith("mid_block.resnets."):
                i = int(p[3])
                rest = "mid.block_%d." % (i + 1) + ".".join(p[4:])
            elif rest.startswith("mid_block.attentions.0."):
                rest = "mid.attn_1." + ".".join(p[4:])
                if v.ndim == 2:
                    v = v[:, :, None, None]
            elif rest.startswith("down_blocks."):
                i = int(p[2])
                if p[3] == "resnets":
                    rest = "down.%d.block.%s." % (i, p[4]) + ".".join(p[5:])
                else:
                    rest = "down.%d.downsample.conv." % i + ".".join(p[6:])
            elif rest.startswith("up_blocks."):
                i = nblocks - 1 - int(p[2])
                if p[3] == "resnets":
                    rest = "up.%d.block.%s." % (i, p[4]) + ".".join(p[5:])
                else:
                    rest = "up.%d.upsample.conv." % i + ".".join(p[6:])
            tail = rest.split(".")
            for a, b in leaf:
                for j in range(len(tail)):
                    cand = ".".join(tail[j:])
                    if cand.startswith(a):
                        rest = ".".join(tail[:j] + [b + cand[len(a):]])
                        break
            n = part + "." + rest
        out[n] = v
    return out


def randomize(model, g):
    """Every parameter random (norm gains ~1, biases ~0.1): the defaults (gain 1, bias 0) would hide mix-ups."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)


def vae(out):
    from diffusers import AutoencoderKL
    convert_ldm_vae_checkpoint = diffusers_function(
        "pipelines/stable_diffusion/convert_from_ckpt.py", "convert_ldm_vae_checkpoint",
        ("renew_vae_resnet_paths", "renew_vae_attention_paths", "assign_to_checkpoint", "shave_segments",
         "conv_attn_to_linear"))
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    m = AutoencoderKL.from_config(TINY_VAE).eval()
    randomize(m, g)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(TINY_VAE, f, indent=2)
    sd = {k: v.float() for k, v in m.state_dict().items()}
    sdxl_st.save(os.path.join(out, "diffusion_pytorch_model.safetensors"), sd)
    ldm = vae_to_ldm(sd, len(TINY_VAE["block_out_channels"]))
    # the map must be exactly the inverse of diffusers' own conversion
    back = convert_ldm_vae_checkpoint({"first_stage_model." + k: v for k, v in ldm.items()}, dict(TINY_VAE))
    assert set(back) == set(sd), sorted(set(back) ^ set(sd))
    for k in sd:
        assert torch.equal(back[k].reshape(sd[k].shape), sd[k]), k
    sdxl_st.save(os.path.join(out, "single_file_fp16.safetensors"),
                 {"first_stage_model." + k: v.half() for k, v in ldm.items()})
    lat = torch.randn(2, 4, 6, 8, generator=g)
    sf = TINY_VAE["scaling_factor"]
    with torch.no_grad():
        img = m.decode(lat / sf).sample
        m16 = AutoencoderKL.from_config(TINY_VAE).eval()
        m16.load_state_dict({k: v.half().float() for k, v in sd.items()})
        img16 = m16.decode(lat / sf).sample
    rgb = (img / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    rgb = (rgb * 255).round().astype("uint8")
    sdxl_st.save(os.path.join(out, "io.safetensors"),
                 {"latents": lat, "image": img.float(), "image_fp16_weights": img16.float(),
                  "rgb": torch.from_numpy(rgb.astype(np.float32))})
    print("vae: wrote", out, "image range", float(img.min()), float(img.max()))


# sdxl-unet's tiny UNet (tests/reference/sdxl_unet_ref.py, TINY): the same structure here, so LoRA keys address
# the modules that UNet has
TINY_UNET = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(8, 16, 16),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 1, 2), attention_head_dim=(1, 2, 4), cross_attention_dim=16,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=4,
    projection_class_embeddings_input_dim=8 + 6 * 4, norm_num_groups=4,
)

# (module, rank): linear attention projections, the linear proj_in/proj_out, a feed-forward, 3x3 and 1x1 convs
LORA_A = [("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", 2),
          ("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k", 2),
          ("mid_block.attentions.0.transformer_blocks.1.attn1.to_out.0", 3),
          ("up_blocks.0.attentions.2.proj_in", 2),
          ("up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2", 4),
          ("down_blocks.0.resnets.1.conv1", 2),
          ("up_blocks.2.resnets.0.conv_shortcut", 2)]
LORA_B = [("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", 3),
          ("mid_block.attentions.0.proj_out", 2),
          ("up_blocks.1.resnets.2.conv2", 3),
          ("down_blocks.2.attentions.1.transformer_blocks.1.attn2.to_v", 2)]


def make_lora(unet, spec, g, scale):
    """{module: (down, up, alpha)}: conv layers get a conv down [r, C, kh, kw] and a 1x1 up [O, r, 1, 1]."""
    mods = dict(unet.named_modules())
    out = {}
    for name, r in spec:
        w = mods[name].weight
        if w.ndim == 4:
            down = torch.randn(r, w.shape[1], w.shape[2], w.shape[3], generator=g) * scale
            up = torch.randn(w.shape[0], r, 1, 1, generator=g) * scale
        else:
            down = torch.randn(r, w.shape[1], generator=g) * scale
            up = torch.randn(w.shape[0], r, generator=g) * scale
        out[name] = (down, up, float(r) * (0.5 + torch.rand(1, generator=g).item()))
    return out


def diffusers_keys(lora, with_alpha):
    sd = {}
    for m, (d, u, a) in lora.items():
        sd["unet." + m + ".lora.down.weight"] = d
        sd["unet." + m + ".lora.up.weight"] = u
        if with_alpha:
            sd["unet." + m + ".alpha"] = torch.tensor(a)
    return sd


def kohya_keys(lora):
    sd = {}
    for m, (d, u, a) in lora.items():
        k = "lora_unet_" + m.replace(".", "_")
        sd[k + ".lora_down.weight"] = d
        sd[k + ".lora_up.weight"] = u
        sd[k + ".alpha"] = torch.tensor(a)
    return sd


def fused(base_sd, loads):
    """Base fp16 UNet; for each (state_dict, kohya?, scale): diffusers loads the LoRA and fuses it at that scale.
    Returns the fused state dict."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.lora import LoraLoaderMixin
    unet = UNet2DConditionModel(**TINY_UNET).eval()
    unet.load_state_dict(base_sd)
    unet = unet.half()
    for sd, kohya, scale in loads:
        sd = {k: v.clone().half() if v.ndim else v.clone() for k, v in sd.items()}
        if kohya:
            sd, alphas = LoraLoaderMixin.lora_state_dict(sd)
        else:
            alphas = None
        LoraLoaderMixin.load_lora_into_unet(sd, alphas, unet)
        unet.fuse_lora(lora_scale=scale)
    return {k: v.clone() for k, v in unet.state_dict().items()}


def lora(out):
    from diffusers import UNet2DConditionModel
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    unet = UNet2DConditionModel(**TINY_UNET).eval()
    randomize(unet, g)
    base = {k: v.half().float() for k, v in unet.state_dict().items()}
    sdxl_st.save(os.path.join(out, "base_fp16.safetensors"), {k: v.half() for k, v in base.items()})
    la, lb = make_lora(unet, LORA_A, g, 0.3), make_lora(unet, LORA_B, g, 0.3)
    # files: A in diffusers keys (fp16, no alpha: alpha = rank, as diffusers' trainer saves), A with alphas
    # (kohya), B in kohya keys; fp16 as people ship them
    def half(sd):
        return {k: (v.half() if v.ndim else v.float().reshape(())) for k, v in sd.items()}
    da = diffusers_keys(la, False)
    sdxl_st.save(os.path.join(out, "a_diffusers.safetensors"), half(da))
    ka, kb = kohya_keys(la), kohya_keys(lb)
    sdxl_st.save(os.path.join(out, "a_kohya.safetensors"), half(ka))
    sdxl_st.save(os.path.join(out, "b_kohya.safetensors"), half(kb))
    res = {}
    # 1. diffusers keys, scale 1 (alpha = rank)
    f1 = fused(base, [(da, False, 1.0)])
    # 2. kohya A at 0.6 then kohya B at 0.4: W0 + 0.6 dA + 0.4 dB (the paper's merge, w = 0.6)
    f2 = fused(base, [(ka, True, 0.6), (kb, True, 0.4)])
    for m, _ in LORA_A + LORA_B:
        k = m + ".weight"
        if m in la:
            res["diffusers_a_1.0/" + k] = f1[k]
        res["kohya_a0.6_b0.4/" + k] = f2[k]
    changed = [k for k in f2 if not torch.equal(f2[k].float(), base[k])]
    assert sorted(changed) == sorted({m + ".weight" for m, _ in LORA_A + LORA_B}), changed
    sdxl_st.save(os.path.join(out, "fused.safetensors"), res)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(dict(unet.config), f, indent=2, default=list)
    print("lora: wrote", out, len(res), "fused tensors")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("euler", "vae", "lora"):
        print(__doc__)
        sys.exit(2)
    torch.set_num_threads(1)
    {"euler": euler, "vae": vae, "lora": lora}[sys.argv[1]](sys.argv[2])
