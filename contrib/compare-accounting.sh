#!/bin/sh
# Runs `sotto demo` once per accounting design the demo knows
# (`sotto demo --list-accounting`: free, blindsig, channels, shopper) on the same network parameters, with one cheating mix, and
# writes every summary to OUT (default ./accounting-run), for
# docs/ACCOUNTING.md. Usage: contrib/compare-accounting.sh [SOTTO] [OUT]
set -eu
SOTTO=${1:-sotto}
OUT=${2:-accounting-run}
PARAMS=${PARAMS:---layers 3 --mixes-per-layer 2 --providers 2 --messages 16 --epoch 20s --cheat-drop 0.3}
mkdir -p "$OUT"
for d in $("$SOTTO" demo --list-accounting); do
	echo "== $d" >&2
	# shellcheck disable=SC2086 # PARAMS is a list of flags
	/usr/bin/time -f "%e s wall, %U s user, %S s sys" -o "$OUT/$d.time" \
		"$SOTTO" demo --accounting "$d" $PARAMS >"$OUT/$d.txt" 2>&1 || echo "$d: demo failed (see $OUT/$d.txt)" >&2
done
for d in $("$SOTTO" demo --list-accounting); do
	echo "== $d ($(cat "$OUT/$d.time" 2>/dev/null))"
	grep -E '^  (messages|latency|loops|payment|freeloader|rewards|cost|verdict)|^    [^ #]|^      ' "$OUT/$d.txt" | grep -v '^    #' || true
done
