#!/usr/bin/env python3
"""sdxl_text_ref.py -- reference fixtures for the SDXL text side (issue 9): the CLIP tokenizer and both CLIP text
encoders, computed with open_clip v2.23.0 on Debian's python3-torch (the environment of
shared/anchors/sdxl_reference_env.sh; transformers is not in it).

Usage: sdxl_text_ref.py [OUT] [--fuzz=N]   (--fuzz=N: also clip_fuzz.json, N random prompts with the real
vocabulary's ids; check-sdxl uses it, it is not committed)
Writes into OUT (default tests/fixtures/sdxl):
  clip_bpe_reduced.txt.gz   the header + first 256 merges of open_clip's bpe_simple_vocab_16e6 (no final newline),
                            so CI can check the tokenizer without the real vocabulary; vocabulary 512+256+2 = 770
  clip_tokens.json          the awkward prompts; open_clip SimpleTokenizer ids (77) with the reduced merges, and
                            with the REAL vocabulary (+ its sha256), and the untruncated counts
  tokenizer/                a diffusers-style tokenizer folder of the reduced vocabulary (vocab.json, merges.txt,
                            special_tokens_map.json, tokenizer_config.json) as SDXL's tokenizer/ (pad = eos)
  text_encoder/             tiny CLIP-L-style CLIPTextModel (quick_gelu): config.json + model.safetensors, HF names
  text_encoder_2/           tiny bigG-style CLIPTextModelWithProjection (gelu): config.json + model.safetensors
  text_single.safetensors   the same two encoders under the single-file names of sd_xl_base_1.0.safetensors:
                            conditioner.embedders.0.transformer.text_model.* (HF names) and
                            conditioner.embedders.1.model.* (open_clip names, taken from the module's state_dict)
  text_ref.safetensors      ids + expected outputs (see below)

Weights are drawn from N(0, 0.02^2)-ish, then rounded so that every weight is exactly representable in fp16 AND
bf16 (bf16 rounding, |w| < 2^-14 flushed to 0): the C test can store them as f32, f16 or bf16 and expect the same
outputs. They are stored as F16.

How the outputs are computed (all in float64 from the stored weights):
  - both towers are open_clip.transformer.TextTransformer modules (QuickGELU for CLIP-L, nn.GELU for bigG; causal
    mask; LayerNorm eps 1e-5); their weights are mapped 1:1 from the HF names (q/k/v concatenated into
    in_proj_weight, text_projection.weight transposed);
  - "penultimate" = the residual stream after layers-1 blocks, no final LayerNorm (diffusers: hidden_states[-2]),
    computed by running the module's own resblocks; "last" = ln_final of the output (HF last_hidden_state);
    "pooled" = ln_final output at the first argmax of the ids (HF pooler_output with eos_token_id 2), and for bigG
    pooled @ text_projection (HF text_embeds; open_clip's own forward() output, which is checked against it).
The ids: prompt + negative prompt tokenized by open_clip with the reduced merges (pads with 0, as tokenizer_2/);
CLIP-L gets the same ids with the padding after the end token replaced by the end token (as tokenizer/ pads).
"""
import gzip
import hashlib
import json
import os
import struct
import sys

import numpy as np
import torch

from open_clip.tokenizer import SimpleTokenizer, default_bpe
from open_clip.transformer import QuickGELU, TextTransformer

NMERGES = 256
CTX = 77
PROMPT = "a photo of a mathematics scientist, looking at the camera, ultra quality, sharp focus"
NEGATIVE = "cartoon, anime, 3d, painting, b&w, low quality"

PROMPTS = [
    PROMPT,
    NEGATIVE,
    "a photo of a female scientist",
    "a photo of a male scientist",
    "a photo of an East Asian scientist",
    "a photo of a White scientist",
    "",
    "   Hello,   WORLD!!!  \t\n  It's   a  TEST   ",
    "don't won't I'm you're they've we'll he'd she's 'S 'LL 'Re O'Neil rock'n'roll",
    "numbers: 1234567890 3.14159 1,000,000 2nd 4K 8k-ultra 2024-01-31",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m S\u00e3o Paulo Z\u00fcrich \u00df \u00e6\u00f8",
    "emoji \U0001F600\U0001F3A8\U0001F680 \U0001F469\u200d\U0001F52C \u2764\ufe0f flags \U0001F1EF\U0001F1F5",
    "CJK: \u6570\u5b66\u8005\u306e\u5199\u771f \ud55c\uad6d\uc5b4 \u4e2d\u6587",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03a3\u039f\u03a6\u0399\u0391 \u0420\u0443\u0441\u0441\u043a\u0438\u0439 "
    "\u0422\u0415\u041a\u0421\u0422 \u0130stanbul",
    "punctuation!?.,;:'\"()[]{}<>@#$%^&*-_=+|\\/~` ... !!! ??? ---",
    "html &amp; &lt;b&gt; &quot;quoted&quot; &#39;apos&#39; &#x1F600; &eacute;t&eacute; &amp;amp; &copy &nbsp;x "
    "&#128512; &#0; &#x80; &notit; &AMP; &unknownentity; &#xD800; & alone",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic\u2028line sep\x0bvt\x1cfs",
    "combining e\u0301 and n\u0303 vs \u00e9 \u00f1",
    "\ufb01 ligature \uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 \u00bd \u00b2 \u2167 \u0663\u0664",
    "<start_of_text> inside <end_of_text> text <|endoftext|>",
    "a",
    "I",
    "hyphen-ated words and under_scores and CamelCaseWords",
    "$100 @user #hashtag 50% off \u2018curly\u2019 \u201cquotes\u201d \u2014 dash",
    " ".join(["a very detailed photograph of a scientist"] * 12),
    " ".join(f"word{i}" for i in range(60)),
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "final sigma \u039f\u0394\u039f\u03a3 \u03c3\u03bf\u03c6\u03a3 \u03a3\u0391\u03a3 \u03a3 a\u03a3-b "
    "\u03a3\u0345\u03a3 ypogegrammeni \u0345 x\u0345y \u0345\u0345!",
    "html5 &bigstar; &CounterClockwiseContourIntegral; &NotNestedGreaterGreater; &fjlig; &amp &ampx &notin &notit; "
    "&lt&gt &#X41; &#65 &#x110000; &#xFDD0;",
]


def reduced_merges(real_path, out_path):
    lines = gzip.open(real_path).read().decode("utf-8").split("\n")
    text = "\n".join(lines[: 1 + NMERGES])   # header + NMERGES merges, no final newline
    data = text.encode("utf-8")
    # a deterministic gzip (mtime 0, no name) so regenerating gives the same bytes
    with open(out_path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(data)
    return lines[1: 1 + NMERGES]


def fuzz_prompts(n, seed):
    """random prompts of awkward pieces and random code points (check-sdxl only: not committed)"""
    import random
    rnd = random.Random(seed)
    pieces = ["a", "photo", "Scientist", "don't", "it's", "'S", "'ll", " ", "\t", "\n", "\u00a0", "\u3000", "&amp;",
              "&lt;", "&gt", "&#39;", "&#x27;", "&#128512;", "&#0;", "&#x80;", "&#150;", "&eacute", "&notit;", "&AMP",
              "&", "#", ";", "&#", "&#x", "&#xD800;", "&#xFFFE;", "&#13;", "&copy2", "&alpha;", "&bigstar;", "!", "?",
              "...", "_", "<", ">", "0", "12", "3.14", "\u0663", "\u00bd", "\u2167", "\u00e9", "e\u0301", "\u00df",
              "\u0130", "\u03a3", "\u03c3", "\u0416", "\u4e2d\u6587", "\U0001F600", "\U0001F469\u200d\U0001F52C",
              "\ufb01", "\uff26", "\u2018", "\u2014", "\x1c", "\x0b", "\u2028", "\u0085", "\u200b", "\u00ad", "A" * 40,
              "<start_of_text>", "<end_of_text>", "\u212a", "\u017f", "\u0345", "\U00010400"]
    out = []
    for _ in range(n):
        s = []
        for _ in range(rnd.randrange(1, 30)):
            if rnd.random() < 0.8:
                s.append(rnd.choice(pieces))
            else:
                c = rnd.randrange(0x20, 0x30000)
                s.append(chr(c) if not 0xD800 <= c <= 0xDFFF else "?")
        out.append("".join(s))
    return out


def tok_ids(tok, texts):
    ids = tok(texts, context_length=CTX).tolist()
    n = [2 + len(tok.encode(t)) for t in texts]
    return ids, n


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=True)
        f.write("\n")


# ---- safetensors writer (the environment's `safetensors` is a stand-in) ----
def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    dt = {np.float32: "F32", np.float16: "F16", np.int32: "I32"}
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


def exact_weights(t):
    """Round to bf16 (RNE), flush |w| < 2^-14 to 0: exactly representable in f32, f16 and bf16."""
    t = t.to(torch.bfloat16).to(torch.float32)
    t[t.abs() < 2.0 ** -14] = 0.0
    assert torch.equal(t.to(torch.float16).to(torch.float32), t)
    return t


def make_tower(cfg, act, seed, vocab):
    torch.manual_seed(seed)
    m = TextTransformer(context_length=CTX, vocab_size=vocab, width=cfg["hidden_size"],
                        heads=cfg["num_attention_heads"], layers=cfg["num_hidden_layers"],
                        mlp_ratio=cfg["intermediate_size"] / cfg["hidden_size"],
                        output_dim=cfg.get("projection_dim", cfg["hidden_size"]), act_layer=act)
    assert m.transformer.resblocks[0].mlp.c_fc.out_features == cfg["intermediate_size"]
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                v = torch.randn_like(p) * 0.1
            elif "ln" in name and name.endswith("weight"):
                v = 1.0 + torch.randn_like(p) * 0.1
            elif name == "positional_embedding":
                v = torch.randn_like(p) * 0.1
            elif name == "token_embedding.weight":
                v = torch.randn_like(p) * 0.5
            else:
                v = torch.randn_like(p) * (1.0 / np.sqrt(p.shape[-1]))
            p.copy_(exact_weights(v))
    return m.double().eval()


def hf_state(m, with_projection):
    """open_clip TextTransformer -> HF CLIPTextModel(WithProjection) names (diffusers text_encoder*/)."""
    sd, out = m.state_dict(), {}
    d = m.width
    out["text_model.embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    out["text_model.embeddings.position_embedding.weight"] = sd["positional_embedding"]
    for i in range(len(m.transformer.resblocks)):
        p, q = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
        w, b = sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"]
        for k, nm in enumerate(("q_proj", "k_proj", "v_proj")):
            out[q + f"self_attn.{nm}.weight"] = w[k * d:(k + 1) * d]
            out[q + f"self_attn.{nm}.bias"] = b[k * d:(k + 1) * d]
        out[q + "self_attn.out_proj.weight"] = sd[p + "attn.out_proj.weight"]
        out[q + "self_attn.out_proj.bias"] = sd[p + "attn.out_proj.bias"]
        for a, bb in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2")):
            out[q + bb + ".weight"] = sd[p + a + ".weight"]
            out[q + bb + ".bias"] = sd[p + a + ".bias"]
        for a, bb in (("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            out[q + bb + ".weight"] = sd[p + a + ".weight"]
            out[q + bb + ".bias"] = sd[p + a + ".bias"]
    out["text_model.final_layer_norm.weight"] = sd["ln_final.weight"]
    out["text_model.final_layer_norm.bias"] = sd["ln_final.bias"]
    if with_projection:
        out["text_projection.weight"] = sd["text_projection"].t()
    return {k: v.float().numpy().astype(np.float16) for k, v in out.items()}


def run_tower(m, ids):
    """penultimate hidden states, last (ln_final) hidden states, pooled (pre-projection), projected."""
    x = m.token_embedding(ids) + m.positional_embedding[: ids.shape[1]]
    x = x.permute(1, 0, 2)
    blocks = m.transformer.resblocks
    for r in blocks[:-1]:
        x = r(x, attn_mask=m.attn_mask)
    pen = x.permute(1, 0, 2).clone()
    x = blocks[-1](x, attn_mask=m.attn_mask).permute(1, 0, 2)
    last = m.ln_final(x)
    pos = ids.argmax(dim=-1)
    pooled = last[torch.arange(ids.shape[0]), pos]
    proj = pooled @ m.text_projection
    ref_pooled = m(ids)                      # open_clip's own forward: pooled @ projection at argmax
    assert torch.allclose(ref_pooled, proj, atol=1e-12), "open_clip forward disagrees with the layer walk"
    return pen, last, pooled, proj


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--fuzz=")]
    nfuzz = sum(int(a.split("=")[1]) for a in sys.argv[1:] if a.startswith("--fuzz="))
    out = args[0] if args else "tests/fixtures/sdxl"
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    real = default_bpe()
    sha = hashlib.sha256(open(real, "rb").read()).hexdigest()
    red_path = os.path.join(out, "clip_bpe_reduced.txt.gz")
    merges = reduced_merges(real, red_path)
    tok_red = SimpleTokenizer(bpe_path=red_path)
    tok_real = SimpleTokenizer()
    assert len(tok_red.encoder) == 512 + NMERGES + 2
    ids_red, n_red = tok_ids(tok_red, PROMPTS)
    ids_real, n_real = tok_ids(tok_real, PROMPTS)
    write_json(os.path.join(out, "clip_tokens.json"), {
        "about": "open_clip v2.23.0 SimpleTokenizer ids (ftfy stand-in = identity), written by "
                 "tests/reference/sdxl_text_ref.py",
        "context": CTX,
        "prompts": PROMPTS,
        "clean": [tok_real.clean_fn(t) for t in PROMPTS],
        "reduced": {"file": "clip_bpe_reduced.txt.gz", "merges": NMERGES, "ids": ids_red, "n": n_red},
        "real": {"file": "bpe_simple_vocab_16e6.txt.gz", "sha256": sha, "ids": ids_real, "n": n_real},
    })

    if nfuzz:   # random prompts against the real vocabulary, ids up to the end token (check-sdxl only)
        fz = fuzz_prompts(nfuzz, 20261127)
        ids, n = tok_ids(tok_real, fz)
        write_json(os.path.join(out, "clip_fuzz.json"), {"prompts": fz, "ids": ids, "n": n})

    # a diffusers-style tokenizer folder (SDXL tokenizer/) of the reduced vocabulary, with HF special names
    tdir = os.path.join(out, "tokenizer")
    os.makedirs(tdir, exist_ok=True)
    vocab = dict(tok_red.encoder)
    del vocab["<start_of_text>"], vocab["<end_of_text>"]
    vocab["<|startoftext|>"] = 512 + NMERGES
    vocab["<|endoftext|>"] = 512 + NMERGES + 1
    write_json(os.path.join(tdir, "vocab.json"), vocab)
    with open(os.path.join(tdir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokspec = lambda c, norm: {"content": c, "lstrip": False, "normalized": norm, "rstrip": False,
                               "single_word": False}
    write_json(os.path.join(tdir, "special_tokens_map.json"), {
        "bos_token": tokspec("<|startoftext|>", True), "eos_token": tokspec("<|endoftext|>", True),
        "pad_token": tokspec("<|endoftext|>", True), "unk_token": tokspec("<|endoftext|>", True)})
    write_json(os.path.join(tdir, "tokenizer_config.json"), {
        "add_prefix_space": False, "bos_token": "<|startoftext|>", "clean_up_tokenization_spaces": True,
        "do_lower_case": True, "eos_token": "<|endoftext|>", "errors": "replace", "model_max_length": CTX,
        "pad_token": "<|endoftext|>", "tokenizer_class": "CLIPTokenizer", "unk_token": "<|endoftext|>"})

    # ---- the two tiny text encoders ----
    V = 512 + NMERGES + 2
    cfg_l = {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "hidden_size": 16,
             "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 3,
             "max_position_embeddings": CTX, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
             "vocab_size": V, "projection_dim": 16, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
             "torch_dtype": "float16"}
    cfg_g = {"architectures": ["CLIPTextModelWithProjection"], "model_type": "clip_text_model", "hidden_size": 24,
             "intermediate_size": 72, "num_attention_heads": 3, "num_hidden_layers": 4,
             "max_position_embeddings": CTX, "hidden_act": "gelu", "layer_norm_eps": 1e-05,
             "vocab_size": V, "projection_dim": 20, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
             "torch_dtype": "float16"}
    m_l = make_tower(cfg_l, QuickGELU, 1234, V)
    m_g = make_tower(cfg_g, torch.nn.GELU, 5678, V)
    for sub, cfg, m, proj in (("text_encoder", cfg_l, m_l, False), ("text_encoder_2", cfg_g, m_g, True)):
        d = os.path.join(out, sub)
        os.makedirs(d, exist_ok=True)
        write_json(os.path.join(d, "config.json"), cfg)
        write_safetensors(os.path.join(d, "model.safetensors"), hf_state(m, proj), {"format": "pt"})
    single = {}
    for k, v in hf_state(m_l, False).items():
        single["conditioner.embedders.0.transformer." + k] = v
    for k, v in m_g.state_dict().items():
        if k == "attn_mask":
            continue
        single["conditioner.embedders.1.model." + k] = v.float().numpy().astype(np.float16)
    single["conditioner.embedders.1.model.logit_scale"] = np.array(np.log(1 / 0.07), dtype=np.float16)
    write_safetensors(os.path.join(out, "text_single.safetensors"), single, {"format": "pt"})

    # ---- expected outputs for prompt + negative ----
    ids_g = torch.tensor(tok_red([PROMPT, NEGATIVE], context_length=CTX).tolist(), dtype=torch.long)
    ids_l = ids_g.clone()
    eos = tok_red.eot_token_id
    for b in range(ids_l.shape[0]):
        e = int((ids_l[b] == eos).nonzero()[0])
        ids_l[b, e + 1:] = eos
    with torch.no_grad():
        pen_l, last_l, pool_l, _ = run_tower(m_l, ids_l)
        pen_g, last_g, pool_g, proj_g = run_tower(m_g, ids_g)
    f32 = lambda t: t.float().numpy()
    write_safetensors(os.path.join(out, "text_ref.safetensors"), {
        "ids_l": ids_l.numpy().astype(np.int32), "ids_g": ids_g.numpy().astype(np.int32),
        "l.penultimate": f32(pen_l), "l.last": f32(last_l), "l.pooled": f32(pool_l),
        "g.penultimate": f32(pen_g), "g.last": f32(last_g), "g.pooled": f32(pool_g), "g.text_embeds": f32(proj_g),
        "context": f32(torch.cat([pen_l, pen_g], dim=-1)),
    }, {"prompt": PROMPT, "negative": NEGATIVE,
        "about": "float64 open_clip TextTransformer outputs from the stored weights (sdxl_text_ref.py)"})
    total = 0
    for root, _, files in os.walk(out):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(f"sdxl_text_ref: wrote {out} (real vocabulary sha256 {sha[:16]}..., all fixtures there {total} bytes)")


if __name__ == "__main__":
    main()
