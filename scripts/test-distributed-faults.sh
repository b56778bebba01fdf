#!/usr/bin/env bash
# Drills for `reverse --distributed` under mpirun (called by scripts/test.sh; needs the debug build it
# made): 2 ranks log the losses of one process drawing the same 2 shards per step (`--shards 2`,
# within 1e-4), through MPI on the CPU and through NCCL on the CUDA emulator's GPUs; a rank that
# fails stops every rank within a bounded time with a message naming it; and the checkpoint written
# before the failure resumes to the same losses as an uninterrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
swift build --product reverse > /dev/null
reverse=.build/debug/reverse
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
small=(--distributed --dim 32 --heads 2 --feed-forward 64 --batch-size 8 --steps 40 --eval-every 0 --eval-size 16 --threads 1)
run() { timeout 300 mpirun -np 2 --oversubscribe --bind-to none "$reverse" "${small[@]}" "$@"; }

run --output "$work/whole" > "$work/whole.log" 2>&1
timeout 300 "$reverse" "${small[@]:1}" --shards 2 --output "$work/one" > "$work/one.log" 2>&1
compare='
import csv, sys
ranks, one = ([float(row["loss"]) for row in csv.DictReader(open(path))] for path in sys.argv[1:3])
steps, through = int(sys.argv[3]), sys.argv[4]
difference = max(abs(a - b) for a, b in zip(ranks, one))
print(f"equivalence drill ({through}): 2 ranks and one process with --shards 2, {len(ranks)} steps: largest loss difference {difference:g} (tolerance 1e-4)")
sys.exit(0 if len(ranks) == len(one) == steps and difference <= 1e-4 else 1)'
python3 -c "$compare" "$work/whole/metrics.csv" "$work/one/metrics.csv" 40 MPI \
    || { echo "equivalence drill: 2 ranks and one process with the same shards disagree"; exit 1; }
# The same on the GPUs of the CUDA emulator, the ranks averaging through NCCL (fewer steps: it is slow).
gpu=(--device cuda --steps 8)
export FLASHGRAD_CUDA_PATH FLASHGRAD_CACHE
FLASHGRAD_CUDA_PATH="$(bash scripts/build-cuda-emulator.sh)" FLASHGRAD_CACHE="$work/kernels"
timeout 300 mpirun -np 2 --oversubscribe --bind-to none -x FLASHGRAD_CUDA_PATH -x FLASHGRAD_CACHE "$reverse" "${small[@]}" "${gpu[@]}" \
    --output "$work/whole-cuda" > "$work/whole-cuda.log" 2>&1 || { cat "$work/whole-cuda.log"; exit 1; }
timeout 300 "$reverse" "${small[@]:1}" "${gpu[@]}" --shards 2 --output "$work/one-cuda" > "$work/one-cuda.log" 2>&1 \
    || { cat "$work/one-cuda.log"; exit 1; }
python3 -c "$compare" "$work/whole-cuda/metrics.csv" "$work/one-cuda/metrics.csv" 8 "NCCL on the CUDA emulator" \
    || { echo "equivalence drill: 2 ranks and one process with the same shards disagree on the CUDA emulator"; exit 1; }
unset FLASHGRAD_CUDA_PATH FLASHGRAD_CACHE
started=$(date +%s)
if run --output "$work/broken" --checkpoint-every 20 --fail-at-step 30 > "$work/broken.log" 2>&1; then
    echo "fault drill: the run with a failing rank exited 0"; exit 1
fi
elapsed=$(( $(date +%s) - started ))
grep -q "rank 1 of 2: --fail-at-step 30: failing on purpose" "$work/broken.log" \
    || { echo "fault drill: no message naming the failing rank"; cat "$work/broken.log"; exit 1; }
[ "$elapsed" -lt 120 ] || { echo "fault drill: the other rank took ${elapsed}s to stop"; exit 1; }
run --output "$work/broken" --resume "$work/broken/checkpoint.safetensors" > "$work/resumed.log" 2>&1
# The loss of every step after the checkpoint, as logged by the uninterrupted and the resumed run.
if ! diff <(awk -F, 'NR > 21 {print $1, $2}' "$work/whole/metrics.csv") <(awk -F, 'NR > 21 {print $1, $2}' "$work/broken/metrics.csv"); then
    echo "fault drill: resumed losses differ from the uninterrupted run"; exit 1
fi
echo "fault drill: rank 1 failed at step 30, every rank stopped in ${elapsed}s with the rank named; resumed from step 20 to the same losses"
