#!/usr/bin/env bash
# Everything one lent GPU machine runs, in one call (device time is scarce: one start).
#   1. benchmarks, one at a time (timings), in the order of issue 27 (part 2): in-step
#      schedules at 50 layers on JAX (throughput: whole fits; latency: a step synced every
#      batch), DropBlock2D / ProbDropBlock2D at (64,56,56,256), 28x28 and 14x14 on JAX, R-Drop
#      on torch (default and jit_compile=True), torch's DropBlock2D beside timm's;
#   2. side by side: `make evidence`'s gpu profile as 8 shards, and the test suite on JAX and
#      torch (the GPU image has neither TensorFlow nor keras-hub: those tests skip);
#   3. the evidence report merged from the shards; everything tarred into OUTDIR/gpu.tar.gz.
# Needs .whl/ with the Keras wheel, namex, optree and timm: `bash benchmarks/gpu_wheels.sh`.
# Usage (on the device): bash benchmarks/gpu_session.sh OUTDIR [SECONDS]
# Knobs: SKIP_BENCH=1 skips phase 1; EVIDENCE_ARGS adds arguments to the evidence shards and
# the merge (e.g. "--regimes fc --resume"); EVIDENCE_PRIOR=DIR copies DIR/runs*.jsonl into the
# evidence folder first (earlier runs for --resume to keep); ONLY=REGEX runs only the benchmarks
# whose name matches (e.g. ONLY=rdrop); PHASE1=SECONDS sets phase 1's share of the budget;
# SKIP_EVIDENCE=1 runs only the suite in phase 2; NPROC sets its pytest workers per backend (3).
set -u
O=${1:?OUTDIR}; BUDGET=${2:-560}
mkdir -p "$O/logs" "$O/ev"
T0=$(date +%s)
now() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(now) )); }
PY=${PY:-python3}  # PY=.venv/bin/python SKIP_INSTALL=1 for a dry run here
[ -n "${SKIP_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile \
  --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false \
  TF_CPP_MIN_LOG_LEVEL=3 MPLBACKEND=Agg
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  KERAS_BACKEND=jax $PY -c "import sys, jax, torch, keras; print(sys.version); print('jax', jax.__version__, jax.devices()); print('torch', torch.__version__, torch.cuda.get_device_name(0)); print('keras', keras.__version__)"
} > "$O/logs/env.txt" 2>&1
cat "$O/logs/env.txt"

# Phase 1: benchmarks, until PHASE1 seconds have passed.
if [ -n "${SKIP_BENCH:-}" ]; then PHASE1=0; else PHASE1=${PHASE1:-$(( BUDGET * 2 / 5 ))}; fi
bench() {  # name seconds backend script args...
  local name=$1 t=$2 b=$3; shift 3
  [[ -n "${ONLY:-}" && ! "$name" =~ $ONLY ]] && return
  local room=$(( PHASE1 - $(now) ))
  (( room < 15 )) && { echo "[$(now) s] skip $name (phase 1 over)"; return; }
  (( t > room )) && t=$room
  echo "[$(now) s] $name (<= $t s)"
  KERAS_BACKEND=$b timeout "$t" $PY "$@" > "$O/logs/bench_$name.txt" 2>&1
  echo "rc=$?" >> "$O/logs/bench_$name.txt"
  grep -E "ratio|RDrop|in_step|Dropout|Block|Path|memory|rc=" "$O/logs/bench_$name.txt" | head -30
}
# Most wanted first (a later one may not get its slot): issue 27's part 2, in its order.
bench schedule_throughput_jax 70 jax benchmarks/bench_schedule_layers.py --layers 50 --repeats 15 --jit-compile true
bench schedule_latency_jax 50 jax benchmarks/bench_callbacks.py --layers 50
bench layers_jax_56 45 jax benchmarks/bench_layers.py --shape 64 56 56 256 --no-per-call --repeats 8
bench layers_jax_28 30 jax benchmarks/bench_layers.py --shape 64 28 28 256 --no-per-call --repeats 8
bench layers_jax_14 30 jax benchmarks/bench_layers.py --shape 64 14 14 256 --no-per-call --repeats 8
bench rdrop_torch 40 torch benchmarks/bench_rdrop.py --repeats 15
bench rdrop_torch_jit 60 torch benchmarks/bench_rdrop.py --repeats 15 --jit-compile true
bench layers_torch_timm 45 torch benchmarks/bench_layers.py --shape 64 56 56 256 --data-format channels_first --repeats 8

# Phase 2: evidence shards and the suite side by side, until BUDGET - 40 s.
P2=$(( $(left) - 40 ))
echo "[$(now) s] phase 2 (<= $P2 s)"
[ -n "${EVIDENCE_PRIOR:-}" ] && cp "$EVIDENCE_PRIOR"/runs*.jsonl "$O/ev/"
for i in 0 1 2 3 4 5 6 7; do
  [ -n "${SKIP_EVIDENCE:-}" ] && break
  KERAS_BACKEND=jax timeout "$P2" $PY examples/evidence.py --profile gpu --backend jax \
    --out "$O/ev" --docs "$O/ev" --shard $i/8 ${EVIDENCE_ARGS:-} > "$O/logs/evidence_shard$i.txt" 2>&1 &
done
for b in jax torch; do
  KERAS_BACKEND=$b timeout "$P2" $PY -m pytest -q -p no:cacheprovider -n ${NPROC:-3} -v -rfE tests \
    > "$O/logs/tests_$b.txt" 2>&1 &
done
wait
echo "[$(now) s] phase 2 done"
tail -n 3 "$O"/logs/tests_*.txt
tail -n 1 "$O"/logs/evidence_shard*.txt
[ -n "${SKIP_EVIDENCE:-}" ] || KERAS_BACKEND=jax timeout 60 $PY examples/evidence.py --profile gpu --backend jax \
  --out "$O/ev" --docs "$O/ev" --merge ${EVIDENCE_ARGS:-} > "$O/logs/evidence_merge.txt" 2>&1
tail -15 "$O/logs/evidence_merge.txt"
tar -czf "$O/gpu.tar.gz" -C "$O" logs ev && rm -rf "$O/logs" "$O/ev"
echo "[$(now) s] done"
