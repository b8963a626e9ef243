#!/usr/bin/env bash
# GPU check of the deep side of lpm: fits in 10 minutes on one H100, no internet.
#
#   bash benchmarks/gpu_check.sh          # on a CUDA machine
#   bash benchmarks/gpu_check.sh --cpu    # small smoke run of the same steps on the CPU
#
# Steps
#   1. install this checkout with `pip install --no-deps -e .` and check the imports it needs;
#   2. throughput: ResNet-32 + fixed-ETF head on synthetic CIFAR-shaped images with CIFAR-10-LT's
#      counts (ratio 100, 12406 images): training and evaluation images/s (mean ± std, n = 3);
#   3. end-to-end: `lpm train-deep` for a few epochs on the same data (per-epoch images/s, tracking time);
#   4. MNIST-1D-LT (ratio 100): learnable head + CE against fixed-ETF head + DR, same recipe and seed
#      (on synthetic-lt when mnist1d cannot be imported); the schedule scales with the epochs (warm-up
#      min(5, epochs/10), lr x0.1 at 80 % and x0.01 at 90 % of the run, full_model.config).
# Results go to $OUT (or runs/gpu_check): throughput.json, run folders, comparison.json.
#
#   bash benchmarks/gpu_check.sh --nuclear        # the certified solver instead (about 5-10 minutes):
#   bash benchmarks/gpu_check.sh --nuclear --cpu  # its smoke run (K = 100, no GPU needed)
# times the factored nuclear engine (learnable CE, exp profile) at K = 1000 (R = 100) and K = 8142
# (R = 500) with the torch back end on the GPU beside the NumPy engine on the CPU
# (benchmarks/gpu_nuclear.py; a CPU solve is cut after CPU_TIMEOUT s, default 240), and writes
# nuclear_gpu.json to $OUT (or results/). Needs numpy, scipy and torch with CUDA.
#
# Python needs: torch, numpy and tqdm; step 4 needs mnist1d, which itself imports matplotlib and requests;
# matplotlib also draws metrics.png (runs skip the figure when it is missing). The runs call the library
# (full_model.train) rather than the `lpm` CLI, so the check does not depend on the other CLI commands'
# imports. If a module is missing and a wheelhouse folder was carried (WHEELHOUSE, default
# benchmarks/wheelhouse, made with `pip download -d benchmarks/wheelhouse numpy tqdm mnist1d matplotlib
# requests`), it is installed from there with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-runs/gpu_check}
mkdir -p "$OUT_DIR"
CPU=0
[ "${1:-}" = "--cpu" ] && CPU=1
if [ "${1:-}" = "--nuclear" ]; then
  NOUT=${OUT:-results}
  mkdir -p "$NOUT"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  "$PY" -c "import numpy, scipy, torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  SMOKE=""
  [ "${2:-}" = "--cpu" ] && SMOKE="--smoke"
  "$PY" benchmarks/gpu_nuclear.py --out "$NOUT" --cpu-timeout "${CPU_TIMEOUT:-240}" $SMOKE 2>&1 | tee "$NOUT/nuclear_gpu.log"
  exit "${PIPESTATUS[0]}"
fi
WHEELHOUSE=${WHEELHOUSE:-benchmarks/wheelhouse}

echo "== 1. environment"
"$PY" -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null \
  || "$PY" -m pip install -q --no-deps -e . 2>/dev/null \
  || { echo "pip install -e . failed (offline build?): using PYTHONPATH=$PWD"; export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"; }
missing=$("$PY" - <<'PYEOF'
import importlib
need = ["numpy", "tqdm", "mnist1d", "matplotlib", "requests"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
PYEOF
)
if [ -n "$missing" ] && [ -d "$WHEELHOUSE" ]; then
  echo "installing from $WHEELHOUSE: $missing"
  "$PY" -m pip install -q --no-index --find-links "$WHEELHOUSE" $missing || true
fi
"$PY" - <<'PYEOF'
import importlib, torch
for m in ["numpy", "tqdm", "mnist1d", "matplotlib", "requests"]:
    print(f"  {m:10s}", "ok" if importlib.util.find_spec(m) else "MISSING")
print("  torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PYEOF
for m in numpy tqdm; do
  "$PY" -c "import $m" 2>/dev/null || { echo "error: python module '$m' is required (carry a wheelhouse, see header)"; exit 3; }
done
FIGS=""
"$PY" -c "import matplotlib" 2>/dev/null || FIGS='"figures": false,'
train() {  # train CONFIG.json OUT_FOLDER: the library call behind `lpm train-deep --config ... --out ...`
  "$PY" - "$1" "$2" "$DEVICE" <<'PYEOF'
import sys
from full_model import build_config, train
result = train(build_config({"out": sys.argv[2], "device": sys.argv[3]}, sys.argv[1]))
print(f"  run folder {result.run_dir}: last test accuracy {result.last_test_accuracy:.4f}, "
      f"best {result.best_test_accuracy:.4f} (epoch {result.best_epoch}, selected on the test set)")
PYEOF
}

if [ $CPU = 1 ]; then
  DEVICE=cpu; STEPS=3; REPEATS=2; EVALB=1; EPOCHS=1; MAXB='"max_batches_per_epoch": 3,'; NMAX='"n_max": 100,'
  MEPOCHS=2; MNMAX=100
else
  DEVICE=cuda; STEPS=50; REPEATS=3; EVALB=20; EPOCHS=4; MAXB=""; NMAX=""
  MEPOCHS=40; MNMAX=500
fi

echo "== 2. throughput (ResNet-32, CIFAR-10-LT shape, batch 128)"
"$PY" -m full_model.bench --device $DEVICE --steps $STEPS --warmup 5 --repeats $REPEATS \
  --eval-batches $EVALB --json "$OUT_DIR/throughput.json"

echo "== 3. end-to-end training run (as lpm train-deep), synthetic CIFAR-10-LT (ratio 100), $EPOCHS epochs"
cat > "$OUT_DIR/synthetic.json" <<JSON
{"dataset": "synthetic-images-lt", "ratio": 100, $NMAX $MAXB $FIGS "head": "fixed-etf", "loss": "dr",
 "dr_form": "released", "epochs": $EPOCHS, "progress": false}
JSON
rm -rf "$OUT_DIR/synthetic_run"
train "$OUT_DIR/synthetic.json" "$OUT_DIR/synthetic_run"
"$PY" - "$OUT_DIR/synthetic_run" <<'PYEOF'
import sys
from full_model.run_format import load_run
run = load_run(sys.argv[1])
for r in run.metrics:
    print(f"  epoch {r['epoch']}: train {r['images_per_s']:.0f} img/s ({r['epoch_time_s']:.2f} s), "
          f"tracking {r['eval_time_s']:.2f} s, test acc {r['test_accuracy']:.3f}, nc1 {r['nc1']:.3g}")
PYEOF

SET=mnist1d-lt
if ! "$PY" -c "import mnist1d.data" 2>/dev/null; then
  echo "mnist1d (with matplotlib, requests) is not importable: comparing on synthetic-lt instead"; SET=synthetic-lt
fi
echo "== 4. $SET (ratio 100): learnable + CE vs fixed-ETF + DR, $MEPOCHS epochs"
for pair in "learnable ce" "fixed-etf dr"; do
  set -- $pair
  rm -rf "$OUT_DIR/${SET}_$1_$2"
  cat > "$OUT_DIR/${SET}_$1_$2.json" <<JSON
{"dataset": "$SET", "ratio": 100, "n_max": $MNMAX, $FIGS "head": "$1", "loss": "$2", "epochs": $MEPOCHS,
 "batch_size": 128, "progress": false}
JSON
  train "$OUT_DIR/${SET}_$1_$2.json" "$OUT_DIR/${SET}_$1_$2"
done
"$PY" - "$OUT_DIR" "$SET" <<'PYEOF'
import json, sys
from pathlib import Path
from full_model.run_format import load_run
out, dataset = Path(sys.argv[1]), sys.argv[2]
table = {}
for name in (f"{dataset}_learnable_ce", f"{dataset}_fixed-etf_dr"):
    run = load_run(out / name)
    last = run.metrics[-1]
    table[name] = {k: last.get(k) for k in ("test_accuracy", "test_head_accuracy", "test_medium_accuracy",
                                            "test_tail_accuracy", "nc1", "collapse_index", "classifier_norm_ratio")}
    table[name]["best_test_accuracy"] = run.summary["best_test_accuracy"]
    print(f"  {name:24s}", "  ".join(f"{k}={v:.3f}" for k, v in table[name].items() if v is not None))
(out / "comparison.json").write_text(json.dumps(table, indent=2) + "\n")
PYEOF
echo "gpu_check done: results in $OUT_DIR"
