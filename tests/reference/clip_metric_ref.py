#!/usr/bin/env python3
"""clip_metric_ref.py -- reference fixtures for the CLIP metric of the SDXL experiment (issue 10 item 2), computed
with open_clip v2.23.0, torchvision 0.14 and Pillow 9.4 on Debian's python3-torch (the environment of
shared/anchors/sdxl_reference_env.sh), scipy for the binomial intervals.

Writes into OUT (default tests/fixtures/clip):
  hf/config.json, hf/model.safetensors   a TINY random CLIP with open_clip's ViT-B-32 structure (QuickGELU, as the
                                         OpenAI weights), in transformers' CLIPModel names (openai/clip-vit-base-
                                         patch32's layout): image 32, patch 8, width 32, 2 layers, 4 heads; text
                                         width 24, 2 layers, 3 heads, vocabulary 770 (the reduced merges of
                                         tests/fixtures/sdxl/clip_bpe_reduced.txt.gz); projection 16. Some config
                                         keys are left out on purpose (transformers' defaults apply).
  openclip.safetensors                   the same weights under open_clip's own state_dict names
  img/*.png                              small test images of several sizes and PNG types (RGB, gray, opaque RGBA,
                                         2- and 4-bit gray, 16-bit RGB), and refused ones (palette, transparent)
  images.csv                             method,lambda,seed,file for the accepted images (methods A and B)
  clip_ref.safetensors                   ids [4, 77] (the paper's two prompt pairs, reduced vocabulary), px [n, 3,
                                         32, 32] (open_clip's preprocessing), text_embeds [4, 16], image_embeds
                                         [n, 16] (encode_text / encode_image in float64), scores [n, 4] (100 cos,
                                         F64); metadata: the file list
  fractions.csv                          per (method, lambda, pair): n, k, fraction, Clopper-Pearson and Wilson 95%
                                         intervals (scipy.stats.beta.ppf / norm.ppf)
  pre/*.png                              PIL's bicubic resize / torchvision Resize(224)+CenterCrop(224) of the
                                         procedural images that test_clip_metric.c also draws (pattern() below)

Weights are drawn at random and rounded to bf16 (|w| < 2^-14 flushed to 0), stored as F16, exact in f32.
"""
import csv
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch
from PIL import Image
from scipy import stats

import open_clip
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.tokenizer import SimpleTokenizer

PROMPTS = ["a photo of a female scientist", "a photo of a male scientist",
           "a photo of an East Asian scientist", "a photo of a White scientist"]
PAIRS = ["gender", "ethnicity"]
E = 16


def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    dt = {np.float32: "F32", np.float16: "F16", np.float64: "F64", np.int32: "I32"}
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        b = arr.tobytes()
        header[name] = {"dtype": dt[arr.dtype.type], "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def write_png_raw(path, w, h, color_type, depth, rows):
    """A PNG from raw scanline bytes (filter 0), for the types PIL does not write (2/4-bit gray, 16-bit RGB)."""
    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + r for r in rows)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def pattern(w, h):
    """The procedural RGB image test_clip_metric.c draws too (integer arithmetic only)."""
    x = np.arange(w)[None, :].repeat(h, 0)
    y = np.arange(h)[:, None].repeat(w, 1)
    r = (x * 255) // (w - 1)
    g = ((y * 255) // (h - 1) + ((x // 7 + y // 5) % 2) * 60) % 256
    b = (((x // 16 + y // 16) % 2) * 200 + ((x * y) % 7) * 8) % 256
    return np.stack([r, g, b], -1).astype(np.uint8)


def exact_weights(t):
    t = t.to(torch.bfloat16).to(torch.float32)
    t[t.abs() < 2.0 ** -14] = 0.0
    return t


def make_model(vocab):
    torch.manual_seed(20261127)
    vcfg = CLIPVisionCfg(layers=2, width=32, head_width=8, mlp_ratio=4.0, patch_size=8, image_size=32)
    tcfg = CLIPTextCfg(context_length=77, vocab_size=vocab, width=24, heads=3, layers=2, mlp_ratio=4.0)
    m = CLIP(embed_dim=E, vision_cfg=vcfg, text_cfg=tcfg, quick_gelu=True)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name == "logit_scale":
                v = torch.tensor(float(np.log(100.0)))
            elif name.endswith("bias"):
                v = torch.randn_like(p) * 0.1
            elif ("ln" in name) and name.endswith("weight"):
                v = 1.0 + torch.randn_like(p) * 0.1
            elif "positional_embedding" in name or "class_embedding" in name:
                v = torch.randn_like(p) * 0.3
            elif name == "token_embedding.weight":
                v = torch.randn_like(p) * 0.5
            elif p.ndim >= 2:
                v = torch.randn_like(p) * (1.0 / np.sqrt(np.prod(p.shape[1:])))
            else:
                v = torch.randn_like(p) * 0.1
            p.copy_(exact_weights(v) if name != "logit_scale" else v)
    return m.double().eval()


def hf_state(m):
    return hf_state_sized(m, 2, 24, 2, 32)


def hf_state_sized(m, tl, tw, vl, vw):
    """open_clip CLIP state_dict -> transformers CLIPModel names (as transformers' convert_clip script maps them);
    tl, tw, vl, vw: text / vision layers and widths."""
    sd, out = m.state_dict(), {}

    def layers(src, dst, n, d):
        for i in range(n):
            p, q = f"{src}{i}.", f"{dst}{i}."
            w, b = sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"]
            for k, nm in enumerate(("q_proj", "k_proj", "v_proj")):
                out[q + f"self_attn.{nm}.weight"] = w[k * d:(k + 1) * d]
                out[q + f"self_attn.{nm}.bias"] = b[k * d:(k + 1) * d]
            out[q + "self_attn.out_proj.weight"] = sd[p + "attn.out_proj.weight"]
            out[q + "self_attn.out_proj.bias"] = sd[p + "attn.out_proj.bias"]
            for a, bb in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                          ("mlp.c_proj", "mlp.fc2")):
                out[q + bb + ".weight"] = sd[p + a + ".weight"]
                out[q + bb + ".bias"] = sd[p + a + ".bias"]

    out["text_model.embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    out["text_model.embeddings.position_embedding.weight"] = sd["positional_embedding"]
    layers("transformer.resblocks.", "text_model.encoder.layers.", tl, tw)
    out["text_model.final_layer_norm.weight"] = sd["ln_final.weight"]
    out["text_model.final_layer_norm.bias"] = sd["ln_final.bias"]
    out["text_projection.weight"] = sd["text_projection"].t()
    out["vision_model.embeddings.class_embedding"] = sd["visual.class_embedding"]
    out["vision_model.embeddings.patch_embedding.weight"] = sd["visual.conv1.weight"]
    out["vision_model.embeddings.position_embedding.weight"] = sd["visual.positional_embedding"]
    out["vision_model.pre_layrnorm.weight"] = sd["visual.ln_pre.weight"]
    out["vision_model.pre_layrnorm.bias"] = sd["visual.ln_pre.bias"]
    layers("visual.transformer.resblocks.", "vision_model.encoder.layers.", vl, vw)
    out["vision_model.post_layernorm.weight"] = sd["visual.ln_post.weight"]
    out["vision_model.post_layernorm.bias"] = sd["visual.ln_post.bias"]
    out["visual_projection.weight"] = sd["visual.proj"].t()
    out["logit_scale"] = sd["logit_scale"]
    res = {k: v.float().numpy().astype(np.float16) for k, v in out.items()}
    res["logit_scale"] = sd["logit_scale"].float().numpy().astype(np.float32)
    # the buffer transformers keeps in older files; the loader must ignore it
    res["vision_model.embeddings.position_ids"] = np.arange(sd["visual.positional_embedding"].shape[0],
                                                            dtype=np.int32)[None]
    return res


def write_images(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)
    files = []

    def smooth(h, w, c):
        base = pattern(max(w, 2), max(h, 2))[:h, :w, :c].astype(np.int32)
        noise = rng.integers(-40, 41, size=(h, w, c))
        return np.clip(base + noise, 0, 255).astype(np.uint8)

    # accepted: RGB of several shapes (down, up, no resize + crop rounding), gray, opaque RGBA, 2/4-bit gray, RGB16
    for name, (w, h) in (("rgb_40x56", (40, 56)), ("rgb_75x33", (75, 33)), ("rgb_20x27", (20, 27)),
                         ("rgb_41x32", (41, 32)), ("rgb_64x64", (64, 64))):
        Image.fromarray(smooth(h, w, 3), "RGB").save(os.path.join(d, name + ".png"))
        files.append(name + ".png")
    Image.fromarray(smooth(41, 32, 1)[:, :, 0], "L").save(os.path.join(d, "gray_32x41.png"))
    files.append("gray_32x41.png")
    a = np.concatenate([smooth(48, 37, 3), np.full((48, 37, 1), 255, np.uint8)], -1)
    Image.fromarray(a, "RGBA").save(os.path.join(d, "rgba_opaque_37x48.png"))
    files.append("rgba_opaque_37x48.png")
    g = smooth(30, 35, 1)[:, :, 0] >> 4     # 4-bit samples
    rows = [bytes(((int(r[2 * i]) << 4) | (int(r[2 * i + 1]) if 2 * i + 1 < 35 else 0)) for i in range(18))
            for r in g]
    write_png_raw(os.path.join(d, "gray4_35x30.png"), 35, 30, 0, 4, rows)
    files.append("gray4_35x30.png")
    g2 = smooth(36, 36, 1)[:, :, 0] >> 6    # 2-bit samples
    rows = [bytes(sum(int(r[4 * i + j]) << (6 - 2 * j) for j in range(4)) for i in range(9)) for r in g2]
    write_png_raw(os.path.join(d, "gray2_36x36.png"), 36, 36, 0, 2, rows)
    files.append("gray2_36x36.png")
    c16 = rng.integers(0, 65536, size=(34, 45, 3)).astype(">u2")
    write_png_raw(os.path.join(d, "rgb16_45x34.png"), 45, 34, 2, 16, [r.tobytes() for r in c16])
    files.append("rgb16_45x34.png")
    # refused: palette, transparent RGBA
    Image.fromarray(smooth(20, 20, 3), "RGB").convert("P").save(os.path.join(d, "bad_palette.png"))
    t = a.copy()
    t[3, 4, 3] = 17
    Image.fromarray(t, "RGBA").save(os.path.join(d, "bad_transparent.png"))
    return files


def full_size(out):
    """--full OUT: a random CLIP with the REAL ViT-B-32 shapes (open_clip's model config, QuickGELU as OpenAI's),
    in open_clip names and as a transformers folder (F16, bf16-exact weights, ~300 MB each; not committed), and its
    float64 outputs for two 224-px procedural images and the paper's prompts (real vocabulary), for
    SF_CLIP_FULL=OUT tests/bin/test_clip_metric."""
    os.makedirs(os.path.join(out, "hf"), exist_ok=True)
    torch.manual_seed(5)
    m = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name == "logit_scale":
                continue
            if name.endswith("bias"):
                v = torch.randn_like(p) * 0.02
            elif ("ln" in name) and name.endswith("weight"):
                v = 1.0 + torch.randn_like(p) * 0.1
            elif p.ndim >= 2 and "embedding" not in name and name not in ("text_projection", "visual.proj"):
                v = torch.randn_like(p) * (1.0 / np.sqrt(np.prod(p.shape[1:])))
            else:
                v = p.clone()
            p.copy_(exact_weights(v))
    m = m.double().eval()
    oc = {k: v.float().numpy().astype(np.float16) for k, v in m.state_dict().items()}
    oc["logit_scale"] = m.logit_scale.detach().float().numpy().astype(np.float32)
    write_safetensors(os.path.join(out, "openclip.safetensors"), oc, {"format": "pt"})
    sd = m.state_dict()
    cfg = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 512,
           "text_config": {"model_type": "clip_text_model"}, "vision_config": {"model_type": "clip_vision_model"}}
    with open(os.path.join(out, "hf", "config.json"), "w") as f:
        json.dump(cfg, f)
    write_safetensors(os.path.join(out, "hf", "model.safetensors"), hf_state_sized(m, 12, 512, 12, 768),
                      {"format": "pt"})
    pre = open_clip.image_transform(224, is_train=False)
    ims = [Image.fromarray(pattern(1024, 1024), "RGB"), Image.fromarray(pattern(300, 217), "RGB")]
    for i, im in enumerate(ims):
        im.save(os.path.join(out, f"im{i}.png"))
    px = torch.stack([pre(im) for im in ims])
    ids = open_clip.tokenize(PROMPTS)
    with torch.no_grad():
        ie, te = m.encode_image(px.double()), m.encode_text(ids)
    write_safetensors(os.path.join(out, "ref.safetensors"), {
        "ids": ids.numpy().astype(np.int32), "px": px.float().numpy(), "image_embeds": ie.float().numpy(),
        "text_embeds": te.float().numpy()})
    print(f"clip_metric_ref: wrote the full-size ViT-B-32 check into {out}")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--full":
        return full_size(sys.argv[2])
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/clip"
    here = os.path.dirname(os.path.abspath(__file__))
    red = os.path.join(here, "..", "fixtures", "sdxl", "clip_bpe_reduced.txt.gz")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    tok = SimpleTokenizer(bpe_path=red)
    V = len(tok.encoder)
    m = make_model(V)

    # ---- weights in both namings ----
    hdir = os.path.join(out, "hf")
    os.makedirs(hdir, exist_ok=True)
    # laid out like openai/clip-vit-base-patch32's config.json (a full transformers dump: "architectures": null,
    # id2label, pruned_heads, ... and a projection_dim inside each sub-config that CLIPModel ignores: the
    # top-level one sizes both projections)
    dump = {"_name_or_path": "", "architectures": None, "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
            "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "pruned_heads": {}, "task_specific_params": None,
            "initializer_factor": 1.0, "initializer_range": 0.02, "projection_dim": 512, "dropout": 0.0}
    cfg = {"_name_or_path": "tiny-clip-vit-b-32-structure", "architectures": ["CLIPModel"],
           "initializer_factor": 1.0, "logit_scale_init_value": 2.6592, "model_type": "clip", "projection_dim": E,
           "text_config": dict(dump, **{"hidden_size": 24, "intermediate_size": 96, "num_attention_heads": 3,
                                        "num_hidden_layers": 2, "max_position_embeddings": 77, "vocab_size": V,
                                        "hidden_act": "quick_gelu", "bos_token_id": 0, "eos_token_id": 2,
                                        "pad_token_id": 1, "model_type": "clip_text_model"}),
           "text_config_dict": None, "transformers_version": None,
           "vision_config": dict(dump, **{"hidden_size": 32, "intermediate_size": 128, "num_attention_heads": 4,
                                          "num_hidden_layers": 2, "image_size": 32, "patch_size": 8,
                                          "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "num_channels": 3,
                                          "model_type": "clip_vision_model"}),
           "vision_config_dict": None}
    with open(os.path.join(hdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    write_safetensors(os.path.join(hdir, "model.safetensors"), hf_state(m), {"format": "pt"})
    oc = {k: v.float().numpy().astype(np.float16) for k, v in m.state_dict().items()}
    oc["logit_scale"] = m.logit_scale.detach().float().numpy().astype(np.float32)
    write_safetensors(os.path.join(out, "openclip.safetensors"), oc, {"format": "pt"})

    # ---- images through open_clip's own preprocessing and encoders ----
    files = write_images(os.path.join(out, "img"))
    pre = open_clip.image_transform(32, is_train=False)
    px = torch.stack([pre(Image.open(os.path.join(out, "img", f))) for f in files])
    ids = tok(PROMPTS, context_length=77)
    with torch.no_grad():
        ie = m.encode_image(px.double())
        te = m.encode_text(ids)
    scores = 100.0 * (ie / ie.norm(dim=-1, keepdim=True)) @ (te / te.norm(dim=-1, keepdim=True)).t()
    write_safetensors(os.path.join(out, "clip_ref.safetensors"), {
        "ids": ids.numpy().astype(np.int32), "px": px.float().numpy(), "text_embeds": te.float().numpy(),
        "image_embeds": ie.float().numpy(), "scores": scores.numpy()},
        {"files": json.dumps(files), "prompts": json.dumps(PROMPTS),
         "about": "open_clip v2.23.0 encode_image/encode_text in float64 of the tiny model (clip_metric_ref.py)"})

    # ---- the image list and the expected fractions ----
    rows = []
    for i, f in enumerate(files):
        rows.append(("A" if i % 2 == 0 else "B", "0.5" if i % 2 == 0 else "1", str(100 + i), "img/" + f))
    with open(os.path.join(out, "images.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["method", "lambda", "seed", "file"])
        w.writerows(rows)
    sc = scores.numpy()
    with open(os.path.join(out, "fractions.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["method", "lambda", "pair", "n", "k", "fraction", "cp_lo", "cp_hi", "wilson_lo", "wilson_hi"])
        for meth, lam in (("A", "0.5"), ("B", "1")):
            sel = [i for i, r in enumerate(rows) if r[0] == meth]
            for p, pname in enumerate(PAIRS):
                n = len(sel)
                k = int(sum(sc[i, 2 * p] > sc[i, 2 * p + 1] for i in sel))
                lo = 0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1)
                hi = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
                z = stats.norm.ppf(0.975)
                ph = k / n
                c = (ph + z * z / (2 * n)) / (1 + z * z / n)
                hw = z * np.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / (1 + z * z / n)
                w.writerow([meth, lam, pname, n, k, repr(k / n), repr(float(lo)), repr(float(hi)),
                            repr(float(max(0.0, c - hw))), repr(float(min(1.0, c + hw)))])
    # the scipy intervals for a table of (k, n) the C test checks directly
    with open(os.path.join(out, "intervals.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["k", "n", "level", "cp_lo", "cp_hi", "wilson_lo", "wilson_hi"])
        for k, n, lev in ((0, 1, 0.95), (1, 1, 0.95), (0, 512, 0.95), (2, 512, 0.95), (12, 512, 0.95),
                          (205, 512, 0.95), (395, 512, 0.95), (510, 512, 0.95), (512, 512, 0.95), (3, 7, 0.9),
                          (50, 100, 0.99), (1, 3584, 0.95)):
            a = 1 - lev
            lo = 0.0 if k == 0 else stats.beta.ppf(a / 2, k, n - k + 1)
            hi = 1.0 if k == n else stats.beta.ppf(1 - a / 2, k + 1, n - k)
            z = stats.norm.ppf(1 - a / 2)
            ph = k / n
            c = (ph + z * z / (2 * n)) / (1 + z * z / n)
            hw = z * np.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / (1 + z * z / n)
            w.writerow([k, n, lev, repr(float(lo)), repr(float(hi)), repr(float(max(0.0, c - hw))),
                        repr(float(min(1.0, c + hw)))])

    # ---- PIL bicubic and torchvision Resize + CenterCrop on procedural images ----
    pdir = os.path.join(out, "pre")
    os.makedirs(pdir, exist_ok=True)
    t224 = open_clip.image_transform(224, is_train=False)
    for (w, h) in ((300, 217), (1024, 1024), (57, 43)):
        im = Image.fromarray(pattern(w, h), "RGB")
        rc = t224.transforms[1](t224.transforms[0](im))          # Resize(224, BICUBIC), CenterCrop(224)
        full = t224(im)
        again = t224.transforms[4](t224.transforms[3](rc))        # ToTensor + Normalize of the 8-bit crop
        assert torch.equal(full, again), "the crop is not the whole story of open_clip's preprocessing"
        rc.save(os.path.join(pdir, f"crop224_{w}x{h}.png"))
    src = Image.fromarray(pattern(300, 217), "RGB")
    for (w, h) in ((101, 217), (300, 90), (433, 250), (7, 5)):
        src.resize((w, h), Image.BICUBIC).save(os.path.join(pdir, f"resize_300x217_to_{w}x{h}.png"))
    Image.fromarray(pattern(300, 217)[:, :, 1], "L").resize((64, 47), Image.BICUBIC).save(
        os.path.join(pdir, "resize_gray_300x217_to_64x47.png"))

    total = 0
    for root, _, fs in os.walk(out):
        for f in fs:
            total += os.path.getsize(os.path.join(root, f))
    print(f"clip_metric_ref: wrote {out} ({len(files)} images, all fixtures {total} bytes)")


if __name__ == "__main__":
    main()
