#!/usr/bin/env bash
# bench/run.sh — every benchmark of bench/README.md, one after the other, on
# loopback. Each program is bounded in time and in requests; the whole run
# takes about 45 minutes on the 2-core reference machine (QUICK=1: about 8).
#
#   bench/run.sh                 # everything, as reported in bench/README.md
#   QUICK=1 bench/run.sh         # shorter runs, 100,000 recipients only
#   OUT=/tmp/figures bench/run.sh
#
# Needs the local PostgreSQL (CP_BENCH_POSTGRES_URL, default the local
# server's "test" database) and node for the node-soap peers. Each step's
# output goes to $OUT/<step>.txt; the tables are printed as they come.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/cp-bench-XXXXXX")}
mkdir -p "$out"
quick=${QUICK:-}

step() {
  local name=$1 limit=$2
  shift 2
  printf '\n== %s (at most %s): %s\n' "$name" "$limit" "$*"
  local began=$SECONDS status=0
  timeout --signal=INT --kill-after=30s "$limit" "$@" 2>"$out/$name.log" | tee "$out/$name.txt" || status=$?
  if [ "$status" != 0 ]; then
    failed+=("$name")
    printf '== %s FAILED (exit %d); its log: %s\n' "$name" "$status" "$out/$name.log"
  fi
  printf '== %s took %d s\n' "$name" $((SECONDS - began))
}
failed=()

echo "campaign-privacy benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(go version | cut -d' ' -f3), $(nproc) cores; output in $out"

# Built first, and run directly, so that timeout's signal reaches the
# program itself (go run would leave it behind).
bin=$out/bin
for b in soap download workflows; do go build -o "$bin/$b" "./bench/$b"; done

if [ -n "$quick" ]; then
  step go-benchmarks 5m go test -run '^$' -bench . -benchtime=2000x -benchmem ./server ./internal/querydef
  step soap 10m "$bin/soap" -duration 3s -conns 1,32
  step load 10m "$bin/soap" -scenarios mixed,hostile -conns 10 -duration 3s
  step load-109 5m "$bin/soap" -scenarios ramped -conns 50 -duration 10s
  step load-108 5m "$bin/soap" -scenarios logon-rate -duration 5s
  step load-106-107 5m "$bin/soap" -scenarios l-create -conns 10,50 -duration 5s
  step storm 5m "$bin/soap" -scenarios storm -conns 100 -duration 3s
  step download 10m "$bin/download" -sizes 10 -warmup 20
  step download-postgres 10m "$bin/download" -store postgres -sizes 10 -warmup 20 -concurrent 0
  step workflows-100k 15m "$bin/workflows" -recipients 100000 -requests 2000 -access 200
else
  step go-benchmarks 10m go test -run '^$' -bench . -benchmem ./server ./internal/querydef ./privacy
  step soap 20m "$bin/soap" -duration 10s -conns 1,10,32,50
  step load 15m "$bin/soap" -scenarios mixed,hostile -conns 10,50 -duration 10s
  step load-109 10m "$bin/soap" -scenarios ramped -conns 50 -duration 120s
  step load-108 10m "$bin/soap" -scenarios logon-rate -duration 60s
  step load-106-107 10m "$bin/soap" -scenarios l-create -conns 10,50 -duration 60s
  step storm 10m "$bin/soap" -scenarios storm -conns 500 -duration 10s
  step download 15m "$bin/download" -sizes 1,10,100 -rounds 15
  step download-postgres 15m "$bin/download" -store postgres -sizes 1,10,100 -rounds 15 -concurrent 0
  step workflows-100k 20m "$bin/workflows" -recipients 100000 -requests 10000 -access 500
  step workflows-1m 40m "$bin/workflows" -recipients 1000000 -requests 10000 -access 500
  step workflows-1m-no-analyze 40m "$bin/workflows" -recipients 1000000 -requests 10000 -access 500 -no-analyze
fi

# Deletes flat from 100,000 to 1,000,000 recipients (analyzed runs): the
# rate at 1M at least 0.8× the rate at 100k.
rate() { sed -n "s/^result: recipients=$1 analyzed=true deletes_per_min=\([0-9]*\)\$/\1/p" "$out"/workflows-*.txt 2>/dev/null | head -n 1; }
small=$(rate 100000) large=$(rate 1000000)
if [ -n "$small" ] && [ -n "$large" ]; then
  awk -v s="$small" -v l="$large" 'BEGIN { r = l / s; printf "target: %s delete requests per minute flat from 100,000 to 1,000,000 recipients: %d → %d/min, %.2f× (goal ≥ 0.80×)\n", (r >= 0.8 ? "✓" : "✗"), s, l, r }' |
    tee "$out/workflows-flat.txt"
fi

# Every target the programs judged ("target: ✓|✗ …" lines), in one list.
echo
echo "== targets (ratios measured side by side in each step; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
grep -h '^target: ' "$out"/*.txt 2>/dev/null | sed 's/^target: //' || echo "(no step printed a target)"
printf '%d met, %d missed\n' "$(grep -h '^target: ✓' "$out"/*.txt 2>/dev/null | wc -l)" "$(grep -h '^target: ✗' "$out"/*.txt 2>/dev/null | wc -l)"

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed steps: ${failed[*]}"
  exit 1
fi
