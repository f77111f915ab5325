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
  sdxl_pipe_ref.py lora_te DIR text-encoder LoRAs (issue 9): the tiny CLIP-L and bigG towers of
                               tests/fixtures/sdxl/text_encoder{,_2} (fp16) as the base, LoRAs on every attention
                               projection and MLP in diffusers keys (text_encoder.* lora_linear_layer,
                               text_encoder_2.* PEFT lora_A/B) and kohya keys (lora_te1_/lora_te2_ with alphas),
                               and the weights after diffusers' own loading (load_lora_into_text_encoder, the
                               non-PEFT path of v0.25.1) and fusing (LoraLoaderMixin.fuse_lora)
  sdxl_pipe_ref.py tiny DIR    checks the output of exp_sdxl/sdxl_tiny --out DIR with diffusers and open_clip
  sdxl_pipe_ref.py pipeline DIR  full sampling runs (10 Euler steps, 32x32 px): exp_sdxl on sdxl_tiny's model
                               (seed 0) dumps its noise and text embeddings; diffusers' own
                               StableDiffusionXLPipeline.__call__ runs on the same model from the same noise and
                               embeddings (prompt_embeds, pooled_prompt_embeds, latents given); writes the inputs
                               and diffusers' final latents and images to DIR/reference.safetensors and prints
                               ours vs diffusers
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
    "block_out_channels": [8, 16, 16], "down_block_types": ["DownEncoderBlock2D"] * 3, "force_upcast": True,
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
    cfg = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True, default=list)
    print("lora: wrote", out, len(res), "fused tensors")


def te_standin(path, with_projection):
    """The module structure of transformers' CLIPTextModel that diffusers' text-encoder LoRA code walks
    (text_model.encoder.layers[i].self_attn.{q,k,v,out}_proj, .mlp.fc1/fc2), holding the fixture tower's linear
    layers in fp16; it is an instance of the stand-in CLIPTextModel(WithProjection) class for diffusers' checks."""
    tf = stub_transformers()
    sd = sdxl_st.load(path)
    nl = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("text_model.encoder.layers."))
    nn = torch.nn

    def lin(name):
        w = sd[name + ".weight"]
        m = nn.Linear(w.shape[1], w.shape[0])
        m.weight.data, m.bias.data = w.float().clone(), sd[name + ".bias"].float().clone()
        return m

    class Box(nn.Module):
        pass

    base = tf.CLIPTextModelWithProjection if with_projection else tf.CLIPTextModel

    class TE(nn.Module, base):
        @property
        def device(self):
            return torch.device("cpu")

        @property
        def dtype(self):
            return next(self.parameters()).dtype

    te = TE()
    te.text_model = Box()
    te.text_model.encoder = Box()
    layers = []
    for i in range(nl):
        p = "text_model.encoder.layers.%d." % i
        L = Box()
        L.self_attn = Box()
        for q in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(L.self_attn, q, lin(p + "self_attn." + q))
        L.mlp = Box()
        L.mlp.fc1, L.mlp.fc2 = lin(p + "mlp.fc1"), lin(p + "mlp.fc2")
        layers.append(L)
    te.text_model.encoder.layers = nn.ModuleList(layers)
    return te.half(), nl


TE_MODS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2"]


def te_lora(te, nl, rank, mlp, g):
    """{module: (down, up, alpha)} on every attention projection (and every MLP when mlp) of a tower, fp16 values"""
    mods = dict(te.named_modules())
    out = {}
    for i in range(nl):
        for m in TE_MODS[:6 if mlp else 4]:
            name = "text_model.encoder.layers.%d.%s" % (i, m)
            w = mods[name].weight
            down = (torch.randn(rank, w.shape[1], generator=g) * 0.3).half().float()
            up = (torch.randn(w.shape[0], rank, generator=g) * 0.3).half().float()
            out[name] = (down, up, float(rank) * (0.5 + torch.rand(1, generator=g).item()))
    return out


def lora_te(out):
    stub_transformers()   # first: diffusers.models.lora takes the CLIP classes at import
    from diffusers.loaders.lora import LoraLoaderMixin
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [os.path.join(root, "fixtures", "sdxl", d, "model.safetensors") for d in ("text_encoder", "text_encoder_2")]
    te1, n1 = te_standin(paths[0], False)
    te2, n2 = te_standin(paths[1], True)
    # LoRA A: CLIP-L attention + MLP (rank 2), bigG attention (rank 3); LoRA B: bigG attention + MLP (rank 2)
    a1, a2 = te_lora(te1, n1, 2, True, g), te_lora(te2, n2, 3, False, g)
    b2 = te_lora(te2, n2, 2, True, g)

    def half(sd):
        return {k: (v.half() if v.ndim else v.float().reshape(())) for k, v in sd.items()}
    da = {}
    for m, (d, u, _) in a1.items():   # diffusers' SDXL trainer form; no alpha (scale 1)
        da["text_encoder." + m + ".lora_linear_layer.down.weight"] = d
        da["text_encoder." + m + ".lora_linear_layer.up.weight"] = u
    for m, (d, u, _) in a2.items():   # PEFT form
        da["text_encoder_2." + m + ".lora_A.weight"] = d
        da["text_encoder_2." + m + ".lora_B.weight"] = u

    def kohya(pairs):
        sd = {}
        for pre, lora in pairs:
            for m, (d, u, a) in lora.items():
                k = pre + m.replace(".", "_")
                sd[k + ".lora_down.weight"], sd[k + ".lora_up.weight"] = d, u
                sd[k + ".alpha"] = torch.tensor(a)
        return sd
    ka, kb = kohya([("lora_te1_", a1), ("lora_te2_", a2)]), kohya([("lora_te2_", b2)])
    sdxl_st.save(os.path.join(out, "te_a_diffusers.safetensors"), half(da))
    sdxl_st.save(os.path.join(out, "te_a_kohya.safetensors"), half(ka))
    sdxl_st.save(os.path.join(out, "te_b_kohya.safetensors"), half(kb))

    class Pipe:   # what LoraLoaderMixin.fuse_lora reads of a pipeline
        num_fused_loras = 0

    def fused(loads):
        """fresh fp16 towers; for each (state_dict, kohya?, scale): diffusers loads the LoRA into both text
        encoders as StableDiffusionXLPipeline.load_lora_weights does, then fuse_lora(lora_scale=scale)"""
        p = Pipe()
        p.text_encoder, _ = te_standin(paths[0], False)
        p.text_encoder_2, _ = te_standin(paths[1], True)
        for sd, is_kohya, scale in loads:
            sd = {k: v.clone().half() if v.ndim else v.clone() for k, v in sd.items()}
            sd, alphas = LoraLoaderMixin.lora_state_dict(sd) if is_kohya else (sd, None)
            for pre, te in (("text_encoder", p.text_encoder), ("text_encoder_2", p.text_encoder_2)):
                part = {k: v for k, v in sd.items() if k.startswith(pre + ".")}
                if part:
                    LoraLoaderMixin.load_lora_into_text_encoder(part, alphas, te, prefix=pre, lora_scale=1.0,
                                                              low_cpu_mem_usage=False)   # no accelerate here
            LoraLoaderMixin.fuse_lora(p, fuse_unet=False, fuse_text_encoder=True, lora_scale=scale)
        res = {}
        for tag, te, n in (("te1", p.text_encoder, n1), ("te2", p.text_encoder_2, n2)):
            mods = dict(te.named_modules())
            for i in range(n):
                for m in TE_MODS:
                    name = "text_model.encoder.layers.%d.%s" % (i, m)
                    lin_ = mods[name]
                    lin_ = getattr(lin_, "regular_linear_layer", lin_)
                    res[tag + "/" + name + ".weight"] = lin_.weight.data.clone()
        return res
    res = {}
    for k, v in fused([(da, False, 1.0)]).items():
        res["diffusers_a_1.0/" + k] = v
    for k, v in fused([(ka, True, 0.6), (kb, True, 0.4)]).items():
        res["kohya_a0.6_b0.4/" + k] = v
    base = {}
    for tag, pth in (("te1", paths[0]), ("te2", paths[1])):
        for k, v in sdxl_st.load(pth).items():
            base[tag + "/" + k] = v
    changed = sorted(k for k in res if not torch.equal(res[k], base[k.split("/", 1)[1]]))
    want = sorted(["diffusers_a_1.0/te1/" + m + ".weight" for m in a1] + ["diffusers_a_1.0/te2/" + m + ".weight" for m in a2] +
                  ["kohya_a0.6_b0.4/te1/" + m + ".weight" for m in a1] +
                  ["kohya_a0.6_b0.4/te2/" + m + ".weight" for m in set(a2) | set(b2)])
    assert changed == want, (set(changed) ^ set(want))
    sdxl_st.save(os.path.join(out, "fused.safetensors"), {k: res[k] for k in want})
    print("lora_te: wrote", out, len(want), "fused tensors")


def tiny(d):
    """Checks what exp_sdxl/sdxl_tiny wrote with the reference libraries: diffusers' UNet2DConditionModel and
    AutoencoderKL load the folder's weights strictly (every key, every shape, nothing extra); diffusers' own
    converters turn the single file's UNet and VAE into exactly the folder's tensors; open_clip's TextTransformer
    loads the single file's OpenCLIP encoder strictly and its tokenizer, built from our merges, has exactly our
    vocab.json; the two LoRA formats load into diffusers' UNet and fuse to the same weights."""
    import gzip
    import tempfile
    stub_transformers()   # first: diffusers' text-encoder LoRA code takes the CLIP classes at import
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from open_clip.tokenizer import SimpleTokenizer
    from open_clip.transformer import TextTransformer
    from diffusers.loaders.lora import LoraLoaderMixin
    f = os.path.join(d, "diffusers")
    ucfg = json.load(open(os.path.join(f, "unet", "config.json")))
    unet = UNet2DConditionModel.from_config(ucfg)
    usd = sdxl_st.load(os.path.join(f, "unet", "diffusion_pytorch_model.safetensors"))
    unet.load_state_dict(usd, strict=True)
    u16 = sdxl_st.load(os.path.join(f, "unet", "diffusion_pytorch_model.fp16.safetensors"))
    assert all(torch.equal(u16[k].float(), usd[k]) for k in usd), "fp16 variant differs"
    vcfg = json.load(open(os.path.join(f, "vae", "config.json")))
    vae_m = AutoencoderKL.from_config(vcfg)
    vsd = sdxl_st.load(os.path.join(f, "vae", "diffusion_pytorch_model.safetensors"))
    vae_m.load_state_dict(vsd, strict=True)
    single = sdxl_st.load(os.path.join(d, "sd_xl_tiny.safetensors")) if False else None
    # the stand-in reader does not read int64: read the single file's float tensors only
    import struct as _s
    raw = open(os.path.join(d, "sd_xl_tiny.safetensors"), "rb").read()
    n = _s.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    single = {}
    for k, e in hdr.items():
        if k == "__metadata__":
            continue
        b, en = e["data_offsets"]
        dt = {"F16": np.float16, "F32": np.float32, "I64": np.int64}[e["dtype"]]
        single[k] = torch.from_numpy(np.frombuffer(raw[8 + n + b:8 + n + en], dtype=dt).reshape(e["shape"]).copy())
    conv_unet = diffusers_function("pipelines/stable_diffusion/convert_from_ckpt.py", "convert_ldm_unet_checkpoint",
                                   ("shave_segments", "renew_resnet_paths", "renew_attention_paths",
                                    "assign_to_checkpoint"))
    import logging
    conv_unet.__globals__["logger"] = logging.getLogger("x")
    cu = conv_unet({k: v.float() for k, v in single.items() if k.startswith("model.diffusion_model.")}, ucfg)
    assert set(cu) == set(usd), sorted(set(cu) ^ set(usd))[:5]
    assert all(torch.equal(cu[k], usd[k]) for k in usd)
    conv_vae = diffusers_function("pipelines/stable_diffusion/convert_from_ckpt.py", "convert_ldm_vae_checkpoint",
                                  ("renew_vae_resnet_paths", "renew_vae_attention_paths", "assign_to_checkpoint",
                                   "shave_segments", "conv_attn_to_linear"))
    cv = conv_vae({k: v.float() for k, v in single.items() if k.startswith("first_stage_model.")}, vcfg)
    assert set(cv) == set(vsd) and all(torch.equal(cv[k].reshape(vsd[k].shape), vsd[k]) for k in vsd)
    t2 = json.load(open(os.path.join(f, "text_encoder_2", "config.json")))
    tt = TextTransformer(context_length=77, vocab_size=t2["vocab_size"], width=t2["hidden_size"],
                         heads=t2["num_attention_heads"], layers=t2["num_hidden_layers"],
                         mlp_ratio=t2["intermediate_size"] / t2["hidden_size"], output_dim=t2["projection_dim"])
    p = "conditioner.embedders.1.model."
    tt.load_state_dict({k[len(p):]: v.float() for k, v in single.items() if k.startswith(p) and
                        not k.endswith("logit_scale")}, strict=True)
    t2sd = sdxl_st.load(os.path.join(f, "text_encoder_2", "model.safetensors"))
    assert torch.equal(tt.text_projection.data.t(), t2sd["text_projection.weight"])
    assert torch.equal(tt.transformer.resblocks[1].attn.in_proj_weight.data[8:16],
                       t2sd["text_model.encoder.layers.1.self_attn.k_proj.weight"])
    t1sd = sdxl_st.load(os.path.join(f, "text_encoder", "model.safetensors"))
    p1 = "conditioner.embedders.0.transformer."
    assert {p1 + k for k in t1sd} | {p1 + "text_model.embeddings.position_ids"} == {k for k in single if k.startswith(p1)}
    with tempfile.TemporaryDirectory() as tmp:
        merges = open(os.path.join(f, "tokenizer", "merges.txt")).read().rstrip("\n")
        gz = os.path.join(tmp, "bpe.txt.gz")
        with gzip.open(gz, "wt") as g:
            g.write(merges)
        tok = SimpleTokenizer(gz)
        ours = json.load(open(os.path.join(f, "tokenizer", "vocab.json")))
        # open_clip v2.23 names the specials <start_of_text> / <end_of_text>; transformers' CLIPTokenizer files
        # (the diffusers folder) <|startoftext|> / <|endoftext|>: same ids
        oc = {{"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}.get(k, k): v
              for k, v in tok.encoder.items()}
        assert oc == ours, "vocab differs from open_clip's construction"
        ids = tok.encode("a photo of a mathematics scientist")
    # LoRAs: both formats of each LoRA fuse to the same weights in diffusers
    for which in "ab":
        res = []
        for fmt_ in ("diffusers", "kohya"):
            m = UNet2DConditionModel.from_config(ucfg)
            m.load_state_dict(usd)
            sd = sdxl_st.load(os.path.join(d, "lora_%s_%s.safetensors" % (which, fmt_)))
            sd = {k: v.float() for k, v in sd.items()}
            if fmt_ == "kohya":
                sd, al = LoraLoaderMixin.lora_state_dict(sd, unet_config=m.config)
            else:
                al = None
            LoraLoaderMixin.load_lora_into_unet(sd, al, m)
            m.fuse_lora(lora_scale=1.0)
            res.append(m.state_dict())
        worst = max((res[0][k] - res[1][k]).abs().max().item() for k in res[0])
        changed = sum(not torch.equal(res[0][k], usd[k]) for k in usd)
        assert worst < 1e-5 and changed > 0, (which, worst, changed)
        # the text-encoder keys: diffusers loads both formats into both towers and fuses them to the same weights
        tres = []
        for fmt_ in ("diffusers", "kohya"):
            sd = sdxl_st.load(os.path.join(d, "lora_%s_%s.safetensors" % (which, fmt_)))
            sd = {k: v.float() for k, v in sd.items()}
            if fmt_ == "kohya":
                sd, al = LoraLoaderMixin.lora_state_dict(sd)
            else:
                al = None

            class P:
                num_fused_loras = 0
            p = P()
            p.text_encoder, _ = te_standin(os.path.join(f, "text_encoder", "model.safetensors"), False)
            p.text_encoder_2, _ = te_standin(os.path.join(f, "text_encoder_2", "model.safetensors"), True)
            n_te = 0
            for pre, te in (("text_encoder", p.text_encoder), ("text_encoder_2", p.text_encoder_2)):
                part = {k: v for k, v in sd.items() if k.startswith(pre + ".")}
                if part:
                    n_te += 1
                    LoraLoaderMixin.load_lora_into_text_encoder(part, al, te, prefix=pre, lora_scale=1.0,
                                                                low_cpu_mem_usage=False)
            LoraLoaderMixin.fuse_lora(p, fuse_unet=False, fuse_text_encoder=True, lora_scale=1.0)
            tres.append({k: v.clone() for te in (p.text_encoder, p.text_encoder_2) for k, v in te.state_dict().items()})
            assert n_te == (2 if which == "a" else 1), (which, fmt_, n_te)
        assert set(tres[0]) == set(tres[1]) and all(torch.equal(tres[0][k], tres[1][k]) for k in tres[0]), which
    print("tiny: the reference libraries accept", d, "- UNet, VAE (both layouts), OpenCLIP tower, tokenizer",
          "(%d merges; 'a photo of a mathematics scientist' -> %s), LoRAs in both formats (UNet and text encoders)" % (len(tok.bpe_ranks), ids))


RUNS = [("cfg5", 5.0, 0.0), ("cfg5_rescale0.7", 5.0, 0.7), ("nocfg", 1.0, 0.0)]


def stub_transformers():
    """A stand-in `transformers` module with the CLIP class names diffusers imports (the reference environment has
    no transformers): they serve diffusers' isinstance checks only; everything that runs is diffusers' code."""
    import types
    import safetensors as _st
    if not hasattr(_st, "safe_open"):
        _st.safe_open = None
    import diffusers
    import diffusers.utils.import_utils as iu
    iu._transformers_available = True
    tf = types.ModuleType("transformers")
    for n in ["CLIPImageProcessor", "CLIPTextModel", "CLIPTextModelWithProjection", "CLIPTokenizer",
              "CLIPVisionModelWithProjection", "PreTrainedModel", "PreTrainedTokenizer", "CLIPTextConfig",
              "CLIPVisionConfig", "CLIPFeatureExtractor"]:
        setattr(tf, n, type(n, (), {}))
    tfu = types.ModuleType("transformers.utils")
    tfu.FLAX_WEIGHTS_NAME, tfu.SAFE_WEIGHTS_NAME, tfu.WEIGHTS_NAME = "flax_model.msgpack", "model.safetensors", "x.bin"
    tf.utils, tf.__version__ = tfu, "4.36.0"
    sys.modules.setdefault("transformers", tf)
    sys.modules.setdefault("transformers.utils", tfu)
    return sys.modules["transformers"]


def sdxl_pipeline_class():
    """StableDiffusionXLPipeline itself. Its module imports transformers (CLIP classes, used only for type checks
    and the text encoders, which we pass as None and replace by prompt embeddings): the stand-in module lets the
    module import; everything that runs is diffusers' code."""
    stub_transformers()
    from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import StableDiffusionXLPipeline
    return StableDiffusionXLPipeline


def pipeline(out):
    import subprocess
    import tempfile
    Pipe = sdxl_pipeline_class()   # first: before diffusers.loaders is imported without the CLIP names
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.makedirs(out, exist_ok=True)
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([os.path.join(root, "exp_sdxl/sdxl_tiny"), "--out", tmp, "--seed", "0"], check=True,
                       stdout=subprocess.DEVNULL)
        f = os.path.join(tmp, "diffusers")
        unet = UNet2DConditionModel.from_config(json.load(open(os.path.join(f, "unet", "config.json"))))
        unet.load_state_dict(sdxl_st.load(os.path.join(f, "unet", "diffusion_pytorch_model.safetensors")))
        vae_m = AutoencoderKL.from_config(json.load(open(os.path.join(f, "vae", "config.json"))))
        vae_m.load_state_dict(sdxl_st.load(os.path.join(f, "vae", "diffusion_pytorch_model.safetensors")))
        sch = EulerDiscreteScheduler.from_config(json.load(open(os.path.join(f, "scheduler", "scheduler_config.json"))))
        pipe = Pipe(vae=vae_m, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None, unet=unet,
                    scheduler=sch, force_zeros_for_empty_prompt=True, add_watermarker=False)
        pipe.set_progress_bar_config(disable=True)
        for tag, g, r in RUNS:
            dump = os.path.join(tmp, tag + ".safetensors")
            subprocess.run([os.path.join(root, "exp_sdxl/exp_sdxl"), "--family", "sdxl", "--model", f, "--steps", "10",
                            "--cfg", str(g), "--guidance-rescale", str(r), "--width", "32", "--height", "32",
                            "--seed", "3", "--out", os.path.join(tmp, tag), "--dump", dump], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ours = sdxl_st.load(dump)
            noise, ctx, pooled = ours["noise.0"][None], ours["context.0"], ours["pooled.0"]
            kw = dict(prompt_embeds=ctx[1:2], negative_prompt_embeds=ctx[0:1], pooled_prompt_embeds=pooled[1:2],
                      negative_pooled_prompt_embeds=pooled[0:1], latents=noise.clone(), num_inference_steps=10,
                      guidance_scale=g, guidance_rescale=r, height=32, width=32)
            with torch.no_grad():
                lat = pipe(output_type="latent", **kw).images
                img = vae_m.decode(lat / vae_m.config.scaling_factor).sample
                rgb = pipe(output_type="np", **kw).images
            res[tag + "/noise"], res[tag + "/context"], res[tag + "/pooled"] = noise[0], ctx, pooled
            res[tag + "/latents"], res[tag + "/image"] = lat[0], img[0]
            res[tag + "/rgb"] = torch.from_numpy((rgb[0] * 255).round().astype(np.float32))
            dl = (ours["final_latents.0"] - lat[0]).abs().max().item()
            di = (ours["image.0"] - img[0]).abs().max().item()
            print("pipeline %-16s ours vs diffusers: final latents max |diff| %.3g (max |latent| %.3g), image max "
                  "|diff| %.3g" % (tag, dl, lat.abs().max().item(), di))
    sdxl_st.save(os.path.join(out, "reference.safetensors"), res,
                 {"model": "exp_sdxl/sdxl_tiny --seed 0", "steps": "10", "size": "32x32", "seed": "3"})
    print("pipeline: wrote", out)


def same(a, b):
    """Two fixture files hold the same data: JSON/text byte for byte; safetensors with the same names, shapes and
    dtypes, values within 1e-5 + 1e-5 |x| (torch's CPU kernels are not bitwise reproducible across thread counts).
    Exit status 0 / 1."""
    if not a.endswith(".safetensors"):
        return 0 if open(a, "rb").read() == open(b, "rb").read() else 1
    x, y = sdxl_st.load(a), sdxl_st.load(b)
    if set(x) != set(y):
        return 1
    for k in x:
        if x[k].shape != y[k].shape or x[k].dtype != y[k].dtype:
            return 1
        if not torch.allclose(x[k].double(), y[k].double(), atol=1e-5, rtol=1e-5):
            print("differs:", k, (x[k].double() - y[k].double()).abs().max().item())
            return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "same":
        sys.exit(same(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 3 and sys.argv[1] == "pipeline":
        pipeline(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "tiny":
        tiny(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) != 3 or sys.argv[1] not in ("euler", "vae", "lora", "lora_te"):
        print(__doc__)
        sys.exit(2)
    torch.set_num_threads(1)
    {"euler": euler, "vae": vae, "lora": lora, "lora_te": lora_te}[sys.argv[1]](sys.argv[2])
