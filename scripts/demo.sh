#!/usr/bin/env bash
# The main job on a demo process: build it, start it, checkpoint it with
# gockpt (which kills it), show what the images hold, restore it with the
# same PID, and check that it runs on with its memory intact. The images
# stay in bin/demo/images for a look afterwards (make clean removes them).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$PWD/bin/demo
imgs=$work/images
pid=
cleanup() {
	# The demo process, or the restored one with its PID (not our child),
	# and never another process that took the PID in between.
	if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$work/demo" ]; then
		kill -9 "$pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT

rm -rf "$work"
mkdir -p "$work"
gcc -O2 -o "$work/demo" scripts/demo.c
setsid "$work/demo" "$work/demo.log" </dev/null >/dev/null 2>&1 &
pid=$!
# dump kills the process as CRIU does: out of the job table, the shell
# still reaps it but reports no "Killed" job for it.
disown "$pid"
sleep 0.5
echo "== demo process $pid is running:"
tail -n 2 "$work/demo.log"

echo "== gockpt dump -t $pid -D $imgs"
./bin/gockpt dump -t "$pid" -D "$imgs" --display-stats
for _ in $(seq 100); do
	[ -e "/proc/$pid" ] || break
	sleep 0.05
done
if [ -e "/proc/$pid" ]; then
	echo "demo process $pid is still there after the dump" >&2
	exit 1
fi
echo "== the process is gone (gockpt dump kills it after a successful dump, as CRIU does)"
echo "== gockpt image ls $imgs"
./bin/gockpt image ls "$imgs"
echo "== gockpt image x $imgs ps"
./bin/gockpt image x "$imgs" ps
echo "== gockpt image show $imgs (first lines)"
./bin/gockpt image show "$imgs" | head -n 12

echo "== gockpt restore -D $imgs -d"
./bin/gockpt restore -D "$imgs" -d --pidfile "$work/pid" --display-stats
[ "$(cat "$work/pid")" = "$pid" ] || { echo "restored with PID $(cat "$work/pid"), not $pid" >&2; exit 1; }
sleep 0.5
echo "== the demo process runs on, restored, with PID $pid:"
tail -n 3 "$work/demo.log"
grep -q BAD "$work/demo.log" && { echo "demo reported a damaged memory pattern" >&2; exit 1; }
echo "demo: OK"
echo "The images stay in $imgs: look at them with"
echo "  bin/gockpt image show $imgs"
echo "The demo ends the restored process now; bring it back again with"
echo "  bin/gockpt restore -D $imgs -d"
