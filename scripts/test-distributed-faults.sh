#!/usr/bin/env bash
# Drills for `reverse --distributed` under mpirun (called by scripts/test.sh; needs the debug build it
# made): 2 ranks log the losses of one process drawing the same 2 shards per step (`--shards 2`,
# within 1e-4); a rank that fails stops every rank within a bounded time with a message naming it;
# and the checkpoint written before the failure resumes to the same losses as an uninterrupted run.
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
ranks, one = ([float(row["loss"]) for row in csv.DictReader(open(path))] for path in sys.argv[1:])
difference = max(abs(a - b) for a, b in zip(ranks, one))
print(f"equivalence drill: 2 ranks and one process with --shards 2, {len(ranks)} steps: largest loss difference {difference:g} (tolerance 1e-4)")
sys.exit(0 if len(ranks) == len(one) == 40 and difference <= 1e-4 else 1)'
python3 -c "$compare" "$work/whole/metrics.csv" "$work/one/metrics.csv" \
    || { echo "equivalence drill: 2 ranks and one process with the same shards disagree"; exit 1; }
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
