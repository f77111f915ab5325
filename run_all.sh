#!/usr/bin/env bash
# run_all.sh: every experiment of `make reproduce`, with knobs.
#   --profile P   auto | paper | cpu | smoke   (auto: paper for the 1-D and theory programs, which fit a
#                 2-core CPU; image experiments use paper only with a CUDA device)
#   --jobs N      run independent configurations (target sizes n, theory programs) N at a time on this
#                 machine; each gets cores/N OpenMP threads
#   --out DIR     results root (default results); experiments write DIR/gaussian, DIR/theory
#   --device D    cpu | cuda | auto (default auto)
#   --only LIST   comma-separated subset of: gaussian,emnist,theory,digits,sdxl (default all); digits = the
#                 digits version of the SDXL comparison (exp_sdxl --family digits: cpu profile, smoke with
#                 --profile smoke); sdxl runs only with the user's weights (below)
#   --emnist-profile P  auto | paper | mnist | cpu | cpu-long | smoke for exp_emnist (auto: smoke with --profile smoke,
#                 mnist when a GPU answers (nvidia-smi; under --slurm: with --device cuda), else cpu). paper
#                 needs data/emnist (EMNIST IDX files)
#   --slurm       submit the same work as dependent Slurm jobs instead of running it: exp_gaussian aux -> array
#                 over n -> merge; exp_emnist classifier and aux -> array over n (B1, B2, calibration) ->
#                 evaluation (the auxiliaries with the first n, then an array over the other n) -> report;
#                 theory. The n lists come from the binaries (--print-n-list). Every exp_emnist unit is cached,
#                 so a job killed at its time limit is resubmitted with the same command and resumes.
#   --slurm-args "ARGS"  extra sbatch arguments (partition, account, time; --gres=gpu:1 for exp_emnist on a GPU)
# The SDXL experiment (paper §5.2, App. H: barycenter vs checkpoint merging, Figures 1-3 and 8-10, the CLIP table)
# runs only with the user's weights, named by these options or the environment variables in brackets:
#   --sdxl-model P    SDXL 1.0 base: a diffusers folder or sd_xl_base_1.0.safetensors [SDXL_MODEL]
#   --sdxl-config D   with a single file: a diffusers folder with the configs and tokenizers [SDXL_CONFIG]
#   --sdxl-loras "A B"  the two LoRA files, the Asian-female fine-tune first (aux_AF) [SDXL_LORAS]
#   --clip-model P    CLIP ViT-B/32 (openai/clip-vit-base-patch32 folder) for the metric [CLIP_MODEL]
#   --sdxl-seeds S    seeds (default 0-511: the paper's 512 images per method) [SDXL_SEEDS]
#   --sdxl-args "A"   more exp_sdxl --experiment options, e.g. "--variant fp16 --lambdas 0.5 --weights 0.5"
#   --clip-args "A"   more clip_fraction options, e.g. "--tokenizer DIR" for a CLIP file without its tokenizer
#   --sdxl-jobs N     under --slurm: the array's task count, each a slice of the seeds (default 32)
set -euo pipefail
cd "$(dirname "$0")"

profile=auto jobs=1 out=results device=auto only=gaussian,emnist,theory,digits,sdxl slurm=0 slurm_args="" ee_profile=auto
sdxl_model=${SDXL_MODEL:-} sdxl_config=${SDXL_CONFIG:-} sdxl_loras=${SDXL_LORAS:-} clip_model=${CLIP_MODEL:-}
sdxl_seeds=${SDXL_SEEDS:-0-511} sdxl_args="" clip_args="" sdxl_jobs=32
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:?--profile needs a value}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --device) device=${2:?--device needs a value}; shift 2 ;;
    --only) only=${2:?--only needs a value}; shift 2 ;;
    --emnist-profile) ee_profile=${2:?--emnist-profile needs a value}; shift 2 ;;
    --slurm) slurm=1; shift ;;
    --slurm-args) slurm_args=${2:?--slurm-args needs a value}; shift 2 ;;
    --sdxl-model) sdxl_model=${2:?--sdxl-model needs a value}; shift 2 ;;
    --sdxl-config) sdxl_config=${2:?--sdxl-config needs a value}; shift 2 ;;
    --sdxl-loras) sdxl_loras=${2:?--sdxl-loras needs a value}; shift 2 ;;
    --clip-model) clip_model=${2:?--clip-model needs a value}; shift 2 ;;
    --sdxl-seeds) sdxl_seeds=${2:?--sdxl-seeds needs a value}; shift 2 ;;
    --sdxl-args) sdxl_args=${2:?--sdxl-args needs a value}; shift 2 ;;
    --clip-args) clip_args=${2:?--clip-args needs a value}; shift 2 ;;
    --sdxl-jobs) sdxl_jobs=${2:?--sdxl-jobs needs a value}; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_all.sh: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in auto|paper|cpu|smoke) ;; *) echo "run_all.sh: error: --profile: '$profile' is not one of auto|paper|cpu|smoke" >&2; exit 2 ;; esac
case "$ee_profile" in auto|paper|mnist|cpu|cpu-long|smoke) ;; *) echo "run_all.sh: error: --emnist-profile: '$ee_profile' is not one of auto|paper|mnist|cpu|cpu-long|smoke" >&2; exit 2 ;; esac
case "$jobs" in ''|*[!0-9]*|0) echo "run_all.sh: error: --jobs: '$jobs' is not a positive integer" >&2; exit 2 ;; esac
case "$device" in cpu|cuda|auto) ;; *) echo "run_all.sh: error: --device: '$device' is not one of cpu|cuda|auto" >&2; exit 2 ;; esac
case "$sdxl_jobs" in ''|*[!0-9]*|0) echo "run_all.sh: error: --sdxl-jobs: '$sdxl_jobs' is not a positive integer" >&2; exit 2 ;; esac

cores=$(nproc)
threads=$(( cores / jobs )); [ "$threads" -ge 1 ] || threads=1
cpu_profile=$profile; [ "$profile" = auto ] && cpu_profile=paper
echo "run_all: profile $cpu_profile (asked: $profile), $jobs job(s) x $threads thread(s), device $device, output $out"
mkdir -p "$out"
t_start=$(date +%s)
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# exp_gaussian is CPU-only (1-D networks); --device applies to the GPU experiments
eg=(./exp_gaussian/exp_gaussian --profile "$cpu_profile" --out "$out/gaussian")
# the n lists are the binaries' own (profile defaults), never repeated here
ns=""; if want gaussian; then ns=$("${eg[@]}" --print-n-list); fi

# exp_emnist's profile: auto = smoke with --profile smoke; else mnist with a GPU (here: one answers nvidia-smi;
# under --slurm: --device cuda, as the jobs run elsewhere), else cpu
if [ "$ee_profile" = auto ]; then
  ee_profile=cpu
  if [ "$profile" = smoke ]; then ee_profile=smoke
  elif [ "$slurm" = 1 ]; then [ "$device" = cuda ] && ee_profile=mnist
  elif [ "$device" != cpu ] && nvidia-smi -L > /dev/null 2>&1; then ee_profile=mnist; fi
fi
ee_data=(); [ "$ee_profile" = paper ] && ee_data=(--emnist data/emnist)
ee=(./exp_emnist/exp_emnist --profile "$ee_profile" --out "$out/emnist" --device "$device" "${ee_data[@]}")
ee_ns=""; if want emnist; then ee_ns=$("${ee[@]}" --print-n-list); fi

# the digits version of the SDXL comparison (issue 10 item 3): cpu profile (~15 min on 2 cores), smoke with smoke
dg_profile=cpu; [ "$profile" = smoke ] && dg_profile=smoke
dgx=(./exp_sdxl/exp_sdxl --family digits --profile "$dg_profile" --out "$out/sdxl")

# the SDXL experiment: only with the user's weights; otherwise one line says what to give
sdxl_ok=0
if want sdxl; then
  read -r -a sdxl_lora_arr <<< "$sdxl_loras"
  if [ -n "$sdxl_model" ] && [ "${#sdxl_lora_arr[@]}" = 2 ] && [ -n "$clip_model" ]; then
    sdxl_ok=1
    es=(./exp_sdxl/exp_sdxl --family sdxl --experiment --model "$sdxl_model" --lora "${sdxl_lora_arr[0]}"
        --lora "${sdxl_lora_arr[1]}" --seeds "$sdxl_seeds" --out "$out/sdxl")
    [ -n "$sdxl_config" ] && es+=(--config "$sdxl_config")
    read -r -a extra <<< "$sdxl_args"; es+=("${extra[@]}")
    cf=(./exp_sdxl/clip_fraction --model "$clip_model" --images "$out/sdxl/images.csv" --out "$out/sdxl"
        --compare results/paper/sdxl_clip.csv)
    read -r -a extra <<< "$clip_args"; cf+=("${extra[@]}")
  else
    echo "run_all: SDXL experiment skipped: give SDXL_MODEL=DIR|FILE SDXL_LORAS=\"AF.safetensors WM.safetensors\" CLIP_MODEL=DIR (e.g. make reproduce SDXL_MODEL=... SDXL_LORAS=... CLIP_MODEL=...; README, exp_sdxl part 2)"
  fi
fi

if [ "$slurm" = 1 ]; then
  command -v sbatch >/dev/null || { echo "run_all.sh: error: --slurm: sbatch not found" >&2; exit 2; }
  # submit NAME [sbatch options...] -- COMMAND: prints the job id
  submit() {
    local name=$1; shift
    local opts=()
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    # shellcheck disable=SC2086
    sbatch --parsable $slurm_args --job-name "$name" "${opts[@]}" --wrap "$*"
  }
  q() { printf '%q ' "$@"; }
  jobs_done=()
  if want gaussian; then
    nlist=($ns)
    aux=$(submit sf-eg-aux -- "$(q "${eg[@]}") --stage aux")
    arr=$(submit sf-eg-n --dependency=afterok:"$aux" --array=0-$(( ${#nlist[@]} - 1 )) -- \
          "nl=(${nlist[*]}); $(q "${eg[@]}") --stage n --n \${nl[\$SLURM_ARRAY_TASK_ID]}")
    mrg=$(submit sf-eg-merge --dependency=afterok:"$arr" -- \
          "$(q "${eg[@]}") --stage merge && for gp in results/gaussian/*.gp; do gnuplot -e \"dir='$out/gaussian'\" \$gp; done")
    jobs_done+=("gaussian: aux $aux, n-array $arr (n = $ns), merge $mrg")
  fi
  if want emnist; then
    # fetched here: the compute nodes may have no network
    [ "$ee_profile" = paper ] || scripts/fetch_mnist.sh ||
      echo "run_all.sh: warning: MNIST could not be fetched; the exp_emnist jobs need data/mnist" >&2
    nlist=($ee_ns)
    clf=$(submit sf-ee-clf -- "$(q "${ee[@]}") --stage classifier")
    eaux=$(submit sf-ee-aux -- "$(q "${ee[@]}") --stage aux")
    earr=$(submit sf-ee-n --dependency=afterok:"$eaux" --array=0-$(( ${#nlist[@]} - 1 )) -- \
           "nl=(${nlist[*]}); $(q "${ee[@]}") --stage n --n \${nl[\$SLURM_ARRAY_TASK_ID]}")
    # the auxiliaries' evaluation does not depend on n: one job does it with the first n, the rest follow
    ev0=$(submit sf-ee-eval --dependency=afterok:"$clf":"$earr" -- "$(q "${ee[@]}") --stage eval --n ${nlist[0]}")
    last=$ev0
    if [ ${#nlist[@]} -gt 1 ]; then
      rest=("${nlist[@]:1}")
      last=$(submit sf-ee-eval-n --dependency=afterok:"$ev0" --array=0-$(( ${#rest[@]} - 1 )) -- \
             "nl=(${rest[*]}); $(q "${ee[@]}") --stage eval --n \${nl[\$SLURM_ARRAY_TASK_ID]}")
    fi
    rep=$(submit sf-ee-report --dependency=afterok:"$last" -- \
          "$(q "${ee[@]}") --stage report && for gp in results/emnist/*.gp; do gnuplot -e \"dir='$out/emnist'\" \$gp; done")
    jobs_done+=("emnist ($ee_profile): classifier $clf, aux $eaux, n-array $earr (n = $ee_ns), eval $ev0, eval-array ${last#$ev0}, report $rep")
  fi
  if want digits; then
    scripts/fetch_mnist.sh || echo "run_all.sh: warning: MNIST could not be fetched; the digits job needs data/mnist" >&2
    dg=$(submit sf-digits -- "$(q "${dgx[@]}") && for gp in results/sdxl/digits_*.gp; do gnuplot -e \"dir='$out/sdxl'\" \$gp; done")
    jobs_done+=("digits ($dg_profile) $dg")
  fi
  if [ "$sdxl_ok" = 1 ]; then
    # an array over slices of the seeds (every image is resumable: a task killed at its time limit is resubmitted
    # with the same command), then the report (images.csv, grids) and the CLIP metric with the paper's table
    sarr=$(submit sf-sdxl-images --array=0-$(( sdxl_jobs - 1 )) -- \
           "$(q "${es[@]}") --stage images --part \$SLURM_ARRAY_TASK_ID/$sdxl_jobs")
    srep=$(submit sf-sdxl-report --dependency=afterok:"$sarr" -- "$(q "${es[@]}") --stage report && $(q "${cf[@]}")")
    jobs_done+=("sdxl: images array $sarr ($sdxl_jobs slices of seeds $sdxl_seeds), report + CLIP $srep")
  fi
  if want theory; then
    th=$(submit sf-theory -- "theory/run_theory.sh --profile $cpu_profile --out $(q "$out/theory")")
    jobs_done+=("theory $th")
  fi
  printf 'submitted %s\n' "${jobs_done[@]}"
  exit 0
fi

if want gaussian; then
  echo "== exp_gaussian: auxiliaries"
  OMP_NUM_THREADS=$cores "${eg[@]}" --stage aux
  echo "== exp_gaussian: n = $ns"
  export OMP_NUM_THREADS=$threads
  printf '%s\n' $ns | xargs -P "$jobs" -I{} "${eg[@]}" --stage n --n {} --quiet
  "${eg[@]}" --stage merge
  for gp in results/gaussian/*.gp; do gnuplot -e "dir='$out/gaussian'" "$gp"; done
  echo "== exp_gaussian: figures in $out/gaussian"
fi
if want emnist; then
  echo "== exp_emnist: profile $ee_profile (every unit is cached: an interrupted run resumes where it stopped)"
  [ "$ee_profile" = paper ] || scripts/fetch_mnist.sh
  OMP_NUM_THREADS=$cores "${ee[@]}"
  for gp in results/emnist/*.gp; do gnuplot -e "dir='$out/emnist'" "$gp"; done
  echo "== exp_emnist: tables and figures in $out/emnist"
fi
if want digits; then
  echo "== exp_sdxl --family digits: profile $dg_profile (cached: an interrupted run resumes where it stopped)"
  scripts/fetch_mnist.sh
  OMP_NUM_THREADS=$cores "${dgx[@]}"
  for gp in results/sdxl/digits_*.gp; do gnuplot -e "dir='$out/sdxl'" "$gp"; done
  echo "== exp_sdxl --family digits: tables and figures in $out/sdxl"
fi
if [ "$sdxl_ok" = 1 ]; then
  echo "== exp_sdxl: barycenter vs merging, seeds $sdxl_seeds (every image is kept: an interrupted run resumes)"
  OMP_NUM_THREADS=$cores "${es[@]}"
  "${cf[@]}"
  echo "== exp_sdxl: CLIP fractions, ours beside the paper's ($out/sdxl/clip_compare.csv)"
  column -t -s, "$out/sdxl/clip_compare.csv"
fi
if want theory; then
  echo "== theory"
  OMP_NUM_THREADS=$threads theory/run_theory.sh --profile "$cpu_profile" --out "$out/theory"
fi
echo "run_all: done in $(( $(date +%s) - t_start )) s"
