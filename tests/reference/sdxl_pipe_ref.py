"""sdxl_pipe_ref: the reference side of the SDXL pipeline checks (issue 9): runs diffusers v0.25.1 on the CPU
(reference environment: tests/reference/README.md, /work/shared/anchors/sdxl_reference_env.sh) and writes the
small fixtures under tests/fixtures/sdxl/ that the C tests compare with, without Python, on every `make test`.

  sdxl_pipe_ref.py euler DIR   EulerDiscreteScheduler (SDXL config): time steps, sigmas for 10/50/100 steps,
                               scale_model_input + step (epsilon, v), and CFG with rescale_noise_cfg
  sdxl_pipe_ref.py vae DIR     a tiny random AutoencoderKL: weights in diffusers layout (fp32) and single-file ldm
                               layout (fp16, checked by diffusers' own convert_ldm_vae_checkpoint), latents and
                               the decoded images of both
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


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("euler", "vae"):
        print(__doc__)
        sys.exit(2)
    torch.set_num_threads(1)
    {"euler": euler, "vae": vae}[sys.argv[1]](sys.argv[2])
