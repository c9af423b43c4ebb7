#!/usr/bin/env bash
# Issue #15: run `kiln demo` and `kiln bench network --runs 1` RUNS times each (default
# 20), in turns, while scripts/portnoise binds and frees random loopback ports beside
# them, and report how many runs passed. A demo run passes when it exits 0 with 3 batch
# jobs completed, 1 service reached and supply conserved; a bench run when it exits 0.
#
#   scripts/port-race.sh                 # this checkout
#   KILN=/path/to/kiln scripts/port-race.sh   # another build (say, before the fix)
#   RUNS=5 BENCH_ARGS="--dataplane-mib 8 --dataplane-rounds 1" scripts/port-race.sh
#   NOISE_ARGS="-rate 2000 -held 1024" scripts/port-race.sh   # a busier machine
#
# Logs of every run stay in $WORK (default: a fresh temporary directory).
set -u
cd "$(dirname "$0")/.." || exit 1 # the checkout this script is in
RUNS=${RUNS:-20}
BENCH_ARGS=${BENCH_ARGS:-}
NOISE_ARGS=${NOISE_ARGS:-}
WORK=${WORK:-$(mktemp -d /tmp/kiln-port-race.XXXXXX)}
mkdir -p "$WORK"
if [ -z "${KILN:-}" ]; then
	KILN="$WORK/kiln"
	go build -o "$KILN" ./cmd/kiln || exit 1
fi
go build -o "$WORK/portnoise" ./scripts/portnoise || exit 1

# shellcheck disable=SC2086
"$WORK/portnoise" $NOISE_ARGS >"$WORK/portnoise.log" 2>&1 &
noise=$!
trap 'kill "$noise" 2>/dev/null' EXIT

demo_ok=0 bench_ok=0 moved=0
for i in $(seq 1 "$RUNS"); do
	t0=$(date +%s)
	if "$KILN" demo --output json >"$WORK/demo-$i.json" 2>"$WORK/demo-$i.err" &&
		grep -q '"jobs_completed": 3' "$WORK/demo-$i.json" &&
		grep -q '"services_reached": 1' "$WORK/demo-$i.json" &&
		grep -q '"supply_conserved": true' "$WORK/demo-$i.json"; then
		demo_ok=$((demo_ok + 1)) r=pass
	else
		r="FAIL: $(grep -m1 -i 'error' "$WORK/demo-$i.err")"
	fi
	n=$(grep -c 'was taken by another program' "$WORK/demo-$i.err")
	moved=$((moved + n))
	echo "demo $i/$RUNS: $r ($(($(date +%s) - t0)) s, service moved off a taken port $n times)"

	t0=$(date +%s)
	# shellcheck disable=SC2086
	if "$KILN" bench network --runs 1 $BENCH_ARGS >"$WORK/bench-$i.out" 2>"$WORK/bench-$i.err"; then
		bench_ok=$((bench_ok + 1)) r=pass
	else
		r="FAIL: $(grep -m1 -i 'error' "$WORK/bench-$i.err")"
	fi
	n=$(grep -c 'was taken by another program' "$WORK/bench-$i.err")
	moved=$((moved + n))
	echo "bench network $i/$RUNS: $r ($(($(date +%s) - t0)) s, service moved off a taken port $n times)"
done
kill "$noise"
wait "$noise" 2>/dev/null
trap - EXIT
echo "kiln demo: $demo_ok of $RUNS passed; kiln bench network --runs 1: $bench_ok of $RUNS passed; services moved off a taken port: $moved"
cat "$WORK/portnoise.log"
echo "logs in $WORK"
[ "$demo_ok" = "$RUNS" ] && [ "$bench_ok" = "$RUNS" ]
