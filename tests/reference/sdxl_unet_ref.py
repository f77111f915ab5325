#!/usr/bin/env python3
"""Reference fixtures for the SDXL UNet (common/models/sdxl/unet.c), from diffusers v0.25.1 itself.

Builds a TINY random diffusers UNet2DConditionModel with the SDXL structure (DownBlock2D then CrossAttnDownBlock2D
blocks, the mirrored up blocks, UNetMidBlock2DCrossAttn, addition_embed_type "text_time", linear projections,
per-block head counts and transformer depths, flip_sin_to_cos, freq_shift 0), and writes under OUT
(default tests/fixtures/sdxl/unet):
  unet/config.json                                  diffusers' own save_config output
  unet/diffusion_pytorch_model.safetensors          fp32 weights, diffusers names
  unet/diffusion_pytorch_model.fp16.safetensors     the same weights rounded to fp16 (the variant file name)
  sd_xl_single_file.safetensors                     fp16, the original single-file names (model.diffusion_model.*)
                                                    plus two non-UNet tensors a single-file checkpoint carries
  io.safetensors                                    inputs (batch 2) and outputs:
      sample [2,4,16,16], timestep [2], encoder_hidden_states [2,77,D], text_embeds [2,P], time_ids [2,6],
      out_fp32 (fp32 weights), out_fp16w (fp16-rounded weights, computed in fp32: what our fp16 path computes)
The single-file names come from an inverse of diffusers' converter written here, and are CHECKED against the
converter itself (convert_from_ckpt.convert_ldm_unet_checkpoint must give back every diffusers tensor exactly),
so the C name map is checked against diffusers when the C test reads this file.
The environment has only a stand-in `safetensors` package, so the format is written here (8-byte little-endian
header length, JSON header padded with spaces to a multiple of 8, raw little-endian data).

  PYTHONPATH=$(cat /work/refenv/PYTHONPATH) python3 tests/reference/sdxl_unet_ref.py [OUT]
"""
import ast, json, logging, os, re, struct, sys
import torch
import diffusers
from diffusers import UNet2DConditionModel


def load_converter():
    """diffusers' convert_ldm_unet_checkpoint and the helpers it calls, taken verbatim from its source file: the
    module itself cannot be imported here (it imports `transformers` at the top, which this environment lacks)."""
    path = os.path.join(os.path.dirname(diffusers.__file__), "pipelines", "stable_diffusion", "convert_from_ckpt.py")
    src = open(path).read()
    want = {"shave_segments", "renew_resnet_paths", "renew_attention_paths", "assign_to_checkpoint",
            "convert_ldm_unet_checkpoint"}
    tree = ast.parse(src)
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in want]
    assert {f.name for f in funcs} == want, "diffusers' converter functions not found"
    ns = {"logger": logging.getLogger("convert_from_ckpt")}
    exec(compile(ast.Module(body=funcs, type_ignores=[]), path, "exec"), ns)
    return ns["convert_ldm_unet_checkpoint"]

TINY = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(8, 16, 16),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 1, 2), attention_head_dim=(1, 2, 4), cross_attention_dim=16,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=4,
    projection_class_embeddings_input_dim=8 + 6 * 4, norm_num_groups=4,
)

ST_DTYPE = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}


def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        t = t.contiguous()
        b = t.numpy().tobytes() if t.dtype != torch.float16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def resnet_to_original(rest):
    for new, old in (("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("time_emb_proj.", "emb_layers.1."),
                     ("norm2.", "out_layers.0."), ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection.")):
        if rest.startswith(new):
            return old + rest[len(new):]
    raise KeyError(rest)


def to_original(name, cfg):
    """diffusers UNet name -> original single-file name (without the model.diffusion_model. prefix)."""
    lpb, nb = cfg["layers_per_block"], len(cfg["block_out_channels"])
    up_attn = [t.startswith("CrossAttn") for t in cfg["up_block_types"]]
    fixed = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
             "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
             "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    for new, old in fixed.items():
        if name.startswith(new):
            return old + name[len(new):]
    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)", name)
    if m:
        b, kind, l, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "downsamplers":
            return f"input_blocks.{1 + b * (lpb + 1) + lpb}.0.op.{rest[len('conv.'):]}"
        i = 1 + b * (lpb + 1) + l
        return f"input_blocks.{i}.0.{resnet_to_original(rest)}" if kind == "resnets" else f"input_blocks.{i}.1.{rest}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", name)
    if m:
        if m[1] == "attentions":
            return f"middle_block.1.{m[3]}"
        return f"middle_block.{2 * int(m[2])}.{resnet_to_original(m[3])}"
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)", name)
    if m:
        b, kind, l, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "upsamplers":
            return f"output_blocks.{b * (lpb + 1) + lpb}.{2 if up_attn[b] else 1}.{rest}"
        i = b * (lpb + 1) + l
        return f"output_blocks.{i}.0.{resnet_to_original(rest)}" if kind == "resnets" else f"output_blocks.{i}.1.{rest}"
    raise KeyError(name)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "sdxl", "unet")
    os.makedirs(os.path.join(out, "unet"), exist_ok=True)
    torch.manual_seed(20261127)
    unet = UNet2DConditionModel(**TINY).eval()
    # Random weights of a useful scale: N(0, 1/fan_in) for matrices and kernels, norm scales around 1, biases small,
    # so no layer is zero and every path (including the zero-initialised-by-nobody ones) carries signal.
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    cfg = dict(unet.config)
    sd = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    n = sum(v.numel() for v in sd.values())

    # config.json exactly as diffusers writes it
    unet.save_config(os.path.join(out, "unet"))
    write_safetensors(os.path.join(out, "unet", "diffusion_pytorch_model.safetensors"), sd)
    sd16 = {k: v.half() for k, v in sd.items()}
    write_safetensors(os.path.join(out, "unet", "diffusion_pytorch_model.fp16.safetensors"), sd16)

    # single file: original names, checked against diffusers' converter (same tensors back, nothing left over)
    orig = {"model.diffusion_model." + to_original(k, cfg): v for k, v in sd16.items()}
    assert len(orig) == len(sd16), "two diffusers names mapped to one original name"
    back = load_converter()(dict(orig), cfg, path="tiny")
    assert set(back) == set(sd16), f"converter keys differ: {sorted(set(back) ^ set(sd16))[:5]}"
    for k in sd16:
        assert torch.equal(back[k], sd16[k]), f"converter gives another tensor for {k}"
    single = dict(orig)
    single["first_stage_model.decoder.conv_in.bias"] = torch.zeros(4, dtype=torch.float16)
    single["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    write_safetensors(os.path.join(out, "sd_xl_single_file.safetensors"), single)

    # inputs: batch 2 (a guidance pair), two different timesteps and micro-conditionings, 77 context tokens
    gi = torch.Generator().manual_seed(11)
    B, H = 2, TINY["sample_size"]
    ptext = TINY["projection_class_embeddings_input_dim"] - 6 * TINY["addition_time_embed_dim"]
    sample = torch.randn(B, 4, H, H, generator=gi)
    timestep = torch.tensor([999.0, 17.5])
    ctx = torch.randn(B, 77, TINY["cross_attention_dim"], generator=gi)
    text_embeds = torch.randn(B, ptext, generator=gi)
    time_ids = torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0], [512.0, 768.0, 16.0, 32.0, 576.0, 832.0]])
    add = {"text_embeds": text_embeds, "time_ids": time_ids}
    with torch.no_grad():
        out32 = unet(sample, timestep, encoder_hidden_states=ctx, added_cond_kwargs=add).sample
        unet.load_state_dict({k: v.float() for k, v in sd16.items()})
        out16 = unet(sample, timestep, encoder_hidden_states=ctx, added_cond_kwargs=add).sample
    write_safetensors(os.path.join(out, "io.safetensors"), {
        "sample": sample, "timestep": timestep, "encoder_hidden_states": ctx, "text_embeds": text_embeds,
        "time_ids": time_ids, "out_fp32": out32, "out_fp16w": out16},
        {"torch": torch.__version__, "params": str(n)})
    print(f"tiny SDXL UNet: {n} parameters, {len(sd)} tensors; out_fp32 max|.| {out32.abs().max():.4g}, "
          f"fp16-weight output differs by max {(out16 - out32).abs().max():.3g}; files in {out}")


if __name__ == "__main__":
    main()
