#!/usr/bin/env bash
# Everything worth checking on a CUDA GPU, in one command with a bounded wall time: the real-CUDA
# tests, the benchmarks of docs/gpu.md and the suite, each section under its own time limit and
# logged to its own file, so that a section cut short still leaves what it printed.
#
#   bash benchmarks/gpu_check.sh ARCHIVES OUT [SECTION...]
#
# ARCHIVES  a folder holding cifar10-jpeg.tar.gz and flowers5.tar.gz (shared/data/README.md in the
#           project's data notes); unpacked into a temporary folder first.
# OUT       where the logs go: <section>.log each, and summary.txt (each section's exit status and seconds).
# SECTION   any of: env gpu-tests bench photos suite paper table6 (default: env gpu-tests bench suite photos,
#           9 minutes at most). paper (ResNet-20, the paper's 64k iterations, up to 10 minutes) and
#           table6 (the cifar10-depth sweep up to ResNet-110, up to 30) run only when named, and
#           need a larger GPU_CHECK_SECONDS.
#
# Runs the checkout as it is (PYTHONPATH=src), with the python3 on PATH (PYTHON overrides it).
# GPU_CHECK_SECONDS (default 540) bounds the whole: each section's limit is cut to what is left,
# and a section with less than 20 seconds left is skipped (named in summary.txt).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
archives=$(cd "$1" && pwd) || { echo "gpu_check: no folder $1 (it should hold cifar10-jpeg.tar.gz and flowers5.tar.gz)" >&2; exit 2; }
mkdir -p "$2" && out=$(cd "$2" && pwd) && : >"$out/summary.txt"
shift 2
sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(env gpu-tests bench suite photos)
python=${PYTHON:-python3}
budget=${GPU_CHECK_SECONDS:-540}
began=$(date +%s)
export PYTHONPATH=src
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT

unpack() {  # unpack ARCHIVE once into the temporary data folder
    local archive="$archives/$1"
    [ -f "$archive" ] || { echo "gpu_check: $archive is missing" >&2; return 1; }
    [ -e "$data/.$1" ] || { tar -xzf "$archive" -C "$data" && touch "$data/.$1"; }
}

cifar() { unpack cifar10-jpeg.tar.gz && echo "$data"; }  # the archive holds train/ and test/ at its top
flowers() { unpack flowers5.tar.gz && echo "$data/flowers5_kaggle"; }

section() {  # section NAME SECONDS COMMAND...: run it under a time limit, log it, note its status
    local name=$1 limit=$2 start status left
    shift 2
    start=$(date +%s)
    left=$(( budget - (start - began) ))
    if [ "$left" -lt 20 ]; then
        echo "$name: skipped, ${left} s of the ${budget} s left" | tee -a "$out/summary.txt"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (at most ${limit} s): $*" | tee "$out/$name.log"
    timeout --kill-after=10 "$limit" "$@" >>"$out/$name.log" 2>&1
    status=$?
    echo "$name: exit $status after $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
}

for s in "${sections[@]}"; do
    case $s in
        env) section env 30 bash -c "nvidia-smi; $python -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.cuda.get_device_name(), torch.cuda.get_device_capability())'; nproc" ;;
        gpu-tests) section gpu-tests 150 "$python" -m pytest -m gpu -q -p no:cacheprovider ;;
        bench) d=$(cifar) && section bench 240 "$python" benchmarks/gpu.py --data-dir "$d" --with-recipe ;;
        suite) section suite 150 "$python" -m pytest -m "not slow and not gpu" -q -n 8 -p no:cacheprovider ;;
        photos) d=$(flowers) && section photos 120 "$python" benchmarks/gpu_photos.py --flowers "$d" --steps 20 --rounds 2 ;;
        paper) d=$(cifar) && section paper 600 "$python" -m resnetlab train --model resnet20 --recipe paper \
                   --dataset folder --data-dir "$d" --out "$data/runs/paper-resnet20" ;;
        table6) d=$(cifar) && section table6 1800 bash -c "$python -m resnetlab sweep cifar10-depth --parallel auto \
                   --only resnet20,resnet32,resnet44,resnet56,resnet110 --set dataset=folder --set data_dir=$d --out $data/runs/cifar10-depth; \
                   status=\$?; find $data/runs/cifar10-depth -name results.md -exec cat {} +; exit \$status" ;;
        *) echo "gpu_check: unknown section $s (env gpu-tests bench photos suite paper table6)" >&2; exit 2 ;;
    esac
done
cat "$out/summary.txt"
