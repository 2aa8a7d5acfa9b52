#!/usr/bin/env bash
# The main job on a demo process: build it, start it, checkpoint it with
# gockpt, show what the images hold, and check the process ran on unharmed.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/gockpt-demo.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

gcc -O2 -o "$work/demo" scripts/demo.c
setsid "$work/demo" "$work/demo.log" </dev/null >/dev/null 2>&1 &
pid=$!
sleep 0.5
echo "== demo process $pid is running:"
tail -n 2 "$work/demo.log"

echo "== gockpt dump -t $pid -D $work/images --leave-running"
./bin/gockpt dump -t "$pid" -D "$work/images" --leave-running --display-stats
echo "== gockpt image ls $work/images"
./bin/gockpt image ls "$work/images"
echo "== gockpt image show $work/images"
./bin/gockpt image show "$work/images"

sleep 0.3
echo "== the demo process ran on after the dump:"
tail -n 2 "$work/demo.log"
grep -q BAD "$work/demo.log" && { echo "demo reported a damaged memory pattern" >&2; exit 1; }
echo "demo: OK"
