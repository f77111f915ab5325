#!/usr/bin/env bash
# exp_sdxl end to end on a tiny model (exp_sdxl/sdxl_tiny): --help names every option; bad flags and bad files
# fail with one line naming the flag or file and write no image; the diffusers folder (fp32 and fp16 variant)
# and the single file give the same PNG bit for bit; a LoRA in diffusers keys and the same LoRA in kohya keys
# (original UNet names) give the same image, a LoRA at weight 0 gives the base image, two LoRAs at 0.6/0.4 give
# another; --noise fed with the dumped noise reproduces the image; images are 8-bit RGB PNGs of the asked size.
# (The numbers against diffusers are tests/test_sdxl_pipe.c's.)
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
bin=./exp_sdxl/exp_sdxl
tiny=./exp_sdxl/sdxl_tiny
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

one_line_error() {   # $1 name, $2 pattern, rest: command
  local name=$1 pat=$2; shift 2
  if "$@" > /dev/null 2> "$tmp/err"; then bad "$name" "exit 0"; return; fi
  if [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q -- "$pat" "$tmp/err"; then ok "$name"
  else bad "$name" "$(head -3 "$tmp/err")"; fi
}

# --help names every option the parser accepts
help=$($bin --help)
missing=""
for o in family model config variant lora lora-mode prompt negative-prompt no-negative-prompt seed num-images steps cfg \
         guidance-rescale width height noise dump out device help; do
  grep -q -- "--$o" <<< "$help" || missing="$missing --$o"
  grep -q "\"$o\"" exp_sdxl/main.c || missing="$missing (not parsed: $o)"
done
[ -z "$missing" ] && ok "--help names every option" || bad "--help names every option" "$missing"
n_parsed=$(grep -o '{"[a-z-]*", [a-z_]*_argument' exp_sdxl/main.c | wc -l)
[ "$n_parsed" = 21 ] && ok "21 options parsed, 21 documented" || bad "option count" "$n_parsed parsed"

one_line_error "sdxl_tiny: unknown flag rejected" "bogus" $tiny --bogus
one_line_error "sdxl_tiny: --out required" "--out" $tiny
$tiny --help | grep -q -- "--seed" && ok "sdxl_tiny --help" || bad "sdxl_tiny --help" "no --seed"
$tiny --out "$tmp/m" > /dev/null || { bad "sdxl_tiny writes the tiny model" "exit $?"; echo "RESULT passed=$pass failed=$fail"; exit 1; }
ok "sdxl_tiny writes the tiny model"
M=$tmp/m/diffusers
run() { local out=$1; shift; $bin --family sdxl --model "$M" --steps 4 --width 32 --height 32 --seed 5 --out "$out" "$@" > /dev/null 2> "$tmp/log"; }

one_line_error "unknown flag rejected" "bogus" $bin --bogus
one_line_error "--family required" "--family" $bin --model "$M"
one_line_error "unknown family rejected" "--family" $bin --family sd15 --model "$M"
one_line_error "bad --steps rejected" "--steps" $bin --family sdxl --model "$M" --steps 0
one_line_error "bad --cfg rejected" "--cfg" $bin --family sdxl --model "$M" --cfg x
one_line_error "bad --guidance-rescale rejected" "--guidance-rescale" $bin --family sdxl --model "$M" --guidance-rescale 2
one_line_error "bad --variant rejected" "--variant" $bin --family sdxl --model "$M" --variant fp8
one_line_error "bad --lora-mode rejected" "--lora-mode" $bin --family sdxl --model "$M" --lora-mode fuse
one_line_error "bad --device rejected" "--device" $bin --family sdxl --model "$M" --device gpu
one_line_error "bad LoRA weight rejected" "--lora" $bin --family sdxl --model "$M" --lora "$tmp/m/lora_a_kohya.safetensors:x"
one_line_error "missing model named" "$tmp/none" $bin --family sdxl --model "$tmp/none" --out "$tmp/x"
one_line_error "size not a multiple of the model's step" "multiple" $bin --family sdxl --model "$M" --width 36 --height 32 --out "$tmp/x"
one_line_error "single file without --config" "--config" $bin --family sdxl --model "$tmp/m/sd_xl_tiny.safetensors" --out "$tmp/x"
# a LoRA with a key no format knows, and a truncated LoRA file
printf 'not a safetensors file' > "$tmp/junk.safetensors"
one_line_error "corrupt LoRA file named" "junk.safetensors" $bin --family sdxl --model "$M" --lora "$tmp/junk.safetensors" --out "$tmp/x"
head -c 2000 "$tmp/m/lora_a_kohya.safetensors" > "$tmp/trunc.safetensors"
one_line_error "truncated LoRA file named" "trunc.safetensors" $bin --family sdxl --model "$M" --lora "$tmp/trunc.safetensors" --out "$tmp/x"
one_line_error "LoRA on a missing module named" "lora_a" $bin --family sdxl --model "$tmp/m/sd_xl_tiny.safetensors" \
  --config "$M" --lora "$tmp/m/lora_a_kohya.safetensors" --lora "$tmp/none/lora_a.safetensors" --out "$tmp/x"
# a truncated weight file and a corrupt config are named
cp -r "$M" "$tmp/t"
head -c 5000 "$M/vae/diffusion_pytorch_model.safetensors" > "$tmp/t/vae/diffusion_pytorch_model.safetensors"
one_line_error "truncated VAE file named" "vae/diffusion_pytorch_model.safetensors" $bin --family sdxl --model "$tmp/t" --out "$tmp/x"
cp "$M/vae/diffusion_pytorch_model.safetensors" "$tmp/t/vae/"
printf '{"num_train_timesteps": 1000,' > "$tmp/t/scheduler/scheduler_config.json"
one_line_error "corrupt scheduler config named" "scheduler_config.json" $bin --family sdxl --model "$tmp/t" --out "$tmp/x"
[ ! -e "$tmp/x" ] || [ -z "$(ls "$tmp/x")" ] && ok "failed runs left no image" || bad "failed runs left no image" "$(ls "$tmp/x")"

run "$tmp/a" --dump "$tmp/a.safetensors" && ok "folder (fp32) run" || bad "folder (fp32) run" "$(cat "$tmp/log")"
png=$tmp/a/sdxl_s5_0.png
if [ -f "$png" ] && [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
   [ "$(od -An -tu1 -j 16 -N 10 "$png" | tr -s ' ' | sed 's/^ //')" = "0 0 0 32 0 0 0 32 8 2" ]; then
  ok "a 32x32 8-bit RGB PNG"
else bad "a 32x32 8-bit RGB PNG" "$(ls -la "$tmp/a")"; fi
run "$tmp/b" --variant fp16 && cmp -s "$png" "$tmp/b/sdxl_s5_0.png" && ok "fp16 variant: same PNG" || bad "fp16 variant: same PNG" "differs"
run "$tmp/c" --model "$tmp/m/sd_xl_tiny.safetensors" --config "$M" && cmp -s "$png" "$tmp/c/sdxl_s5_0.png" &&
  ok "single file: same PNG" || bad "single file: same PNG" "$(cat "$tmp/log")"
run "$tmp/d" --model "$M" --lora "$tmp/m/lora_a_diffusers.safetensors"; a1=$tmp/d/sdxl_s5_0.png
run "$tmp/e" --model "$M" --lora "$tmp/m/lora_a_kohya.safetensors:1"
cmp -s "$a1" "$tmp/e/sdxl_s5_0.png" && ok "LoRA: diffusers keys = kohya keys (original names)" || bad "LoRA formats agree" "differ"
cmp -s "$a1" "$png" && bad "LoRA changes the image" "same as base" || ok "LoRA changes the image"
run "$tmp/f" --model "$M" --lora "$tmp/m/lora_a_kohya.safetensors:0"
cmp -s "$png" "$tmp/f/sdxl_s5_0.png" && ok "LoRA at weight 0 = base" || bad "LoRA at weight 0 = base" "differs"
run "$tmp/g" --model "$M" --lora "$tmp/m/lora_a_kohya.safetensors:0.6" --lora "$tmp/m/lora_b_diffusers.safetensors:0.4" &&
  [ -f "$tmp/g/sdxl_s5_0.png" ] && ! cmp -s "$tmp/g/sdxl_s5_0.png" "$a1" && ok "two LoRAs merged (0.6 / 0.4)" ||
  bad "two LoRAs merged" "$(cat "$tmp/log")"
# the same LoRAs in the other key formats (the order is kept: merging in fp32 rounds after each LoRA, as
# diffusers' fusing does, so another order may differ in the last bit)
run "$tmp/h" --model "$M" --lora "$tmp/m/lora_a_diffusers.safetensors:0.6" --lora "$tmp/m/lora_b_kohya.safetensors:0.4"
cmp -s "$tmp/g/sdxl_s5_0.png" "$tmp/h/sdxl_s5_0.png" && ok "two LoRAs: the key format does not matter" ||
  bad "two LoRAs: key format" "differ"
run "$tmp/r" --model "$M" --lora "$tmp/m/lora_a_kohya.safetensors:0.6" --lora "$tmp/m/lora_b_diffusers.safetensors:0.4" \
  --lora-mode runtime && [ -f "$tmp/r/sdxl_s5_0.png" ] && ok "two LoRAs at run time" || bad "runtime LoRAs" "$(cat "$tmp/log")"
run "$tmp/r0" --model "$M" --lora "$tmp/m/lora_a_kohya.safetensors:0" --lora-mode runtime
cmp -s "$png" "$tmp/r0/sdxl_s5_0.png" && ok "run-time LoRA at weight 0 = base" || bad "runtime weight 0" "differs"
# the dumped noise fed back reproduces the image; another seed gives another image
run "$tmp/k" --seed 99 --noise "$tmp/a.safetensors" && cmp -s "$png" "$tmp/k/sdxl_s99_0.png" &&
  ok "--noise with the dumped noise reproduces the image" || bad "--noise" "$(cat "$tmp/log")"
one_line_error "--noise without the tensor named" "noise.1" $bin --family sdxl --model "$M" --steps 2 --width 32 \
  --height 32 --num-images 2 --noise "$tmp/a.safetensors" --out "$tmp/y"
[ ! -e "$tmp/y" ] || [ -z "$(ls "$tmp/y")" ] && ok "... and made no image" || bad "no image on bad --noise" "$(ls "$tmp/y")"
run "$tmp/i" --model "$M" --seed 6 && ! cmp -s "$png" "$tmp/i/sdxl_s6_0.png" && ok "another seed, another image" ||
  bad "another seed" "same image"
run "$tmp/j" --model "$M" --num-images 2 && cmp -s "$png" "$tmp/j/sdxl_s5_0.png" && [ -f "$tmp/j/sdxl_s5_1.png" ] &&
  ! cmp -s "$png" "$tmp/j/sdxl_s5_1.png" && ok "--num-images 2: image 0 is the single run's, image 1 differs" ||
  bad "--num-images" "$(ls "$tmp/j")"
echo "RESULT passed=$pass failed=$fail"
[ "$fail" = 0 ]
