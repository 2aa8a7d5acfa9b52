#!/usr/bin/env bash
# The main job on a demo process: build it, start it, checkpoint it with
# gockpt (which kills it), show what the images hold, restore it with the
# same PID, and check that it runs on with its memory intact.
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

echo "== gockpt dump -t $pid -D $work/images"
./bin/gockpt dump -t "$pid" -D "$work/images" --display-stats
wait "$pid" 2>/dev/null || true
echo "== the process is gone: $(ps -p "$pid" >/dev/null && echo still there || echo yes)"
echo "== gockpt image ls $work/images"
./bin/gockpt image ls "$work/images"
echo "== gockpt image show $work/images (first lines)"
./bin/gockpt image show "$work/images" | head -n 12

echo "== gockpt restore -D $work/images -d"
./bin/gockpt restore -D "$work/images" -d --pidfile "$work/pid" --display-stats
[ "$(cat "$work/pid")" = "$pid" ] || { echo "restored with PID $(cat "$work/pid"), not $pid" >&2; exit 1; }
sleep 0.5
echo "== the demo process runs on, restored, with PID $pid:"
tail -n 3 "$work/demo.log"
grep -q BAD "$work/demo.log" && { echo "demo reported a damaged memory pattern" >&2; exit 1; }
echo "demo: OK"
