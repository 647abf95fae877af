#!/usr/bin/env bash
# Every benchmark's JAX path and the test suite on a GPU, in one go, in under 8 minutes.
#
#   benchmarks/gpu.sh [--out DIR] [--no-install] [--wheelhouse DIR] [--cpu] [--smoke]
#                     [--budget SECONDS]
#
# On a fresh GPU machine (run from the repository root):
#   1. makes a virtual environment .venv-gpu with the package, its test and bench extras and
#      jax[cuda12] at the JAX version of an existing .venv (else pyproject's lower bound), from
#      the package registry, or from --wheelhouse DIR (wheels fetched beforehand with
#      `pip download`) where there is no network; --no-install uses the active Python as it is;
#   2. checks that JAX sees a GPU (stops with a message otherwise);
#   3. runs the test suite (pytest -n auto, at most 4 minutes) into DIR/tests.log;
#   4. runs each benchmark at a size that suits a GPU, each under its own time limit and all
#      within the time left, printing the ratio tables the benchmark prints and writing its
#      log to DIR/<name>.log;
#   5. writes DIR/summary.md: the device, the versions, each step's status, seconds and the
#      tail of its log (the tables), and DIR/environment.txt.
#
# --cpu runs everything on the CPU instead (to check the script where there is no GPU);
# --smoke shrinks every size and runs two test files, so that the whole script runs in a few
# minutes on a laptop. A step that fails or runs out of time is recorded and the script
# goes on; the exit status is the number of failed steps (0: all passed).
set -u -o pipefail

OUT="gpu-results"
INSTALL=1
WHEELHOUSE=""
PLATFORM="cuda"
SMOKE=0
BUDGET=470      # seconds for everything after the installation (8 minutes, less a margin)
TEST_LIMIT=240  # seconds for the test suite, which runs first
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --wheelhouse) WHEELHOUSE="$2"; shift 2 ;;
    --cpu) PLATFORM="cpu"; shift ;;
    --smoke) SMOKE=1; shift ;;
    --budget) BUDGET="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
START=$(date +%s)

# -- 1. environment ----------------------------------------------------------------------------
PY=python3
if [ "$INSTALL" = 1 ]; then
  JAXVER="$( (.venv/bin/python -c 'import jax; print(jax.__version__)' 2>/dev/null) || true)"
  [ -n "$JAXVER" ] || JAXVER="$(sed -n 's/^ *"jax>=\([0-9.]*\)".*/\1/p' pyproject.toml | head -1)"
  JAXSPEC="jax==$JAXVER"
  [ "$PLATFORM" = cuda ] && JAXSPEC="jax[cuda12]==$JAXVER"
  echo "installing infograv[test,bench] and $JAXSPEC into .venv-gpu"
  python3 -m venv .venv-gpu || { echo "gpu.sh: python3 -m venv failed" >&2; exit 2; }
  PIPOPTS=(-q)
  [ -n "$WHEELHOUSE" ] && PIPOPTS+=(--no-index --find-links "$WHEELHOUSE")
  .venv-gpu/bin/pip install "${PIPOPTS[@]}" -e ".[test,bench]" "$JAXSPEC" \
    > "$OUT/install.log" 2>&1 || { echo "gpu.sh: installation failed, see $OUT/install.log" >&2; exit 2; }
  PY="$ROOT/.venv-gpu/bin/python"
elif [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
fi
export JAX_PLATFORMS="$PLATFORM"
export PYTHONUNBUFFERED=1

# -- 2. the device -----------------------------------------------------------------------------
if ! "$PY" - > "$OUT/environment.txt" 2>&1 <<'EOF'
import platform
import jax
dev = jax.devices()[0]
print(f"device: {dev.platform} {getattr(dev, 'device_kind', '')} x{jax.device_count()}")
print(f"python {platform.python_version()}, jax {jax.__version__}")
for name in ("jaxlib", "numpy", "scipy", "diffrax", "equinox", "torch", "transformers"):
    try:
        mod = __import__(name)
        print(f"{name} {mod.__version__}")
    except Exception as exc:  # an optional competitor that is not installed
        print(f"{name}: not available ({type(exc).__name__})")
EOF
then
  echo "gpu.sh: JAX does not start on platform '$PLATFORM':" >&2
  cat "$OUT/environment.txt" >&2
  exit 2
fi
cat "$OUT/environment.txt"
if [ "$PLATFORM" = cuda ] && ! grep -q "^device: gpu" "$OUT/environment.txt"; then
  echo "gpu.sh: no GPU visible to JAX (use --cpu to run on the CPU)" >&2
  exit 2
fi

STATUS=()
run_step() {  # name, seconds, command...
  local name="$1" limit="$2"; shift 2
  local left=$(( BUDGET - ($(date +%s) - START) ))
  if [ "$left" -le 5 ]; then
    STATUS+=("| $name | skipped | 0 | the 8-minute budget is spent |"); return
  fi
  [ "$limit" -gt "$left" ] && limit="$left"
  echo; echo "== $name (limit ${limit}s): $*"
  local t0; t0=$(date +%s)
  timeout --signal=TERM --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  local dt=$(( $(date +%s) - t0 ))
  local what="ok"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then what="time limit (${limit}s)"; elif [ "$rc" != 0 ]; then what="failed (exit $rc)"; fi
  STATUS+=("| $name | $what | $dt | $OUT/$name.log |")
  [ "$what" = ok ]
}

FAILED=0

# -- 3. the test suite (first: correctness before speed; at most 4 minutes) ------------------
if [ "$SMOKE" = 1 ]; then
  TESTS=(tests/test_geo_contract.py tests/test_parallel.py -q -x)
else
  TESTS=(tests -q -n auto --durations=15)
fi
run_step tests "$TEST_LIMIT" "$PY" -m pytest "${TESTS[@]}" || FAILED=$((FAILED + 1))

# -- 4. benchmarks (in the time left) -------------------------------------------------------
# name | seconds | arguments (full size) | arguments (smoke)
STEPS=(
  "bench_trig|30|--n 1000000 --repeat 100|--n 10000 --repeat 20"
  "bench_geodesic|150|--n 100000 --subset 20 --einsteinpy 0|--n 500 --subset 4 --einsteinpy 0"
  "bench_geodesic_roofline|90|--roofline --n 100000|--roofline --n 500"
  "bench_selection|60|--B 4096 --N 50000 --d 384 --numpy-queries 8|--B 64 --N 2000 --d 32 --numpy-queries 4 --repeat 2"
  "bench_logmap|60|--dims 2 16 384 --geomstats-max-dim 2 --geomstats-tight-max-dim 0 --scipy-max-dim 16|--dims 2 --geomstats-max-dim 0 --geomstats-tight-max-dim 0 --scipy-max-dim 2"
  "bench_lm|90|--shapes 1x128,8x128,1x512 --repeats 3 --threads 8|--shapes 1x32 --repeats 1 --new-tokens 8 --skip-first"
  "bench_kernels|30|--dims 3,32 --kernels yukawa,gaussian --timeout 25|--dims 3 --kernels gaussian --timeout 25"
  "bench_symbolic|60|--skip-foreign --points 1000000 --timeout 25|--skip-foreign --cases schwarzschild --points 1000 --timeout 25"
)

for entry in "${STEPS[@]}"; do
  IFS='|' read -r name limit full smoke <<< "$entry"
  script="benchmarks/${name%_roofline}.py"
  if [ ! -f "$script" ]; then
    STATUS+=("| $name | not present | 0 | |"); continue
  fi
  args="$full"
  # smoke sizes are small, but a laptop compiles slower than a GPU host: twice the time
  [ "$SMOKE" = 1 ] && args="$smoke" && limit=$(( 2 * limit ))
  # shellcheck disable=SC2086  # the argument lists are meant to split
  run_step "$name" "$limit" "$PY" "$script" $args || FAILED=$((FAILED + 1))
done
# benchmarks added later run at their defaults (each under a minute)
for script in benchmarks/bench_*.py; do
  name="$(basename "$script" .py)"
  case " ${STEPS[*]} " in *"$name|"*) continue ;; esac
  run_step "$name" 60 "$PY" "$script" || FAILED=$((FAILED + 1))
done

# -- 5. summary ---------------------------------------------------------------------------------
{
  echo "# infograv on $(head -1 "$OUT/environment.txt" | sed 's/^device: //')"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), platform $PLATFORM$([ "$SMOKE" = 1 ] && echo ', smoke sizes'), $(( $(date +%s) - START )) s in all."
  echo
  sed 's/^/    /' "$OUT/environment.txt"
  echo
  echo "| step | status | seconds | log |"
  echo "|---|---|---|---|"
  printf '%s\n' "${STATUS[@]}"
  for log in "$OUT"/bench_*.log; do
    [ -f "$log" ] || continue
    echo; echo "## $(basename "$log" .log)"; echo
    grep -E '^\||ratio|x above|floor|GFLOP|fit on' "$log" | tail -40
  done
} > "$OUT/summary.md"
echo
cat "$OUT/summary.md" | sed -n '1,/^## /p' | head -n -1
echo "results: $OUT (summary.md, one log per step); failed steps: $FAILED"
exit "$FAILED"
