#!/usr/bin/env bash
# Pre-dumps tracked by soft-dirty, in the shared test VM (Debian's 6.1
# kernel: soft-dirty, no PAGEMAP_SCAN, so --track-mem must pick soft-dirty).
# A program with 4096 pages (test/vm/softdirty-prog.c) is pre-dumped twice
# and dumped, writing a known set of pages between iterations: the second
# pre-dump and the final dump must hold exactly the pages written since the
# iteration before (all others left in the parent), and the restored
# program must find every page as it last wrote it.
# Usage: test/vm/softdirty.sh (builds the VM on first use, ~2 min).
# KEEP=DIR keeps the VM's results (images, logs) in DIR.
# PROGCTX=TYPE: the SELinux domain the program runs in (default vmtest_a_t,
# as in selinux.sh; PROGCTX= runs it unconfined_t like the job: restore
# then leaves the label it inherited alone, as unconfined_t may not even
# dyntransition to itself).
set -euo pipefail
cd "$(dirname "$0")/../.."
vmdir=$(cd ../shared/vm && pwd)
VM=${VM:-${TMPDIR:-/tmp}/gockpt-vm}
[ -f "$VM/root.img" ] || "$vmdir/make-vm.sh"
job=$(mktemp -d /tmp/gockpt-vmjob.XXXXXX)
out=${KEEP:-$(mktemp -d /tmp/gockpt-vmout.XXXXXX)}
if [ -n "${KEEP:-}" ]; then trap 'rm -rf "$job"' EXIT; else trap 'rm -rf "$job" "$out"' EXIT; fi
CGO_ENABLED=0 go build -o "$job/gockpt" ./cmd/gockpt
gcc -static -O2 -o "$job/prog" test/vm/softdirty-prog.c
printf '%s\n' "${PROGCTX-vmtest_a_t}" > "$job/progctx"

# pages.py FILE ADDR NPAGES WANT: the pages of the area [ADDR, +NPAGES)
# that a decoded pagemap image holds data for (flags 4, present) must be
# exactly WANT ("all" or a comma list), and every other page of the area
# must be in the parent (flags 1).
cat > "$job/pages.py" <<'PY'
import json, sys
path, addr, n, want = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3]), sys.argv[4]
present, parent = [], []
for e in json.load(open(path))["entries"]:
    if "vaddr" not in e:
        continue
    for i in range(e.get("nr_pages", 0)):
        a = e["vaddr"] + i * 4096
        if addr <= a < addr + n * 4096:
            (present if e.get("flags", 0) & 4 else parent if e.get("flags", 0) & 1 else []).append((a - addr) // 4096)
want = list(range(n)) if want == "all" else sorted(int(x) for x in want.split(","))
present.sort()

def ranges(l):
    out, i = [], 0
    while i < len(l):
        j = i
        while j + 1 < len(l) and l[j + 1] == l[j] + 1:
            j += 1
        out.append(str(l[i]) if i == j else "%d-%d" % (l[i], l[j]))
        i = j + 1
    return ",".join(out) or "none"

print("  present: %s (%d); in the parent: %d; want present: %s" % (ranges(present), len(present), len(parent), ranges(want)))
sys.exit(0 if present == want and len(present) + len(parent) == n else 1)
PY

cat > "$job/run" <<'JOB'
cd /job
want=${WANT_BACKEND:-soft-dirty}
W=${WORK:-/tmp/w}
R=${RESULTS:-/job/results}
rm -rf "$W"; mkdir -p "$W" "$R"; chmod 777 "$W"
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
waitlog() { # PATTERN SECONDS
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		grep -q "$1" "$W/log" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}
gk() { echo "\$ gockpt $*" | sed "s|$W/||g"; timeout 600 ./gockpt "$@"; }
P=
finish() {
	[ -n "$P" ] && kill -9 "$P" 2>/dev/null
	for d in p1 p2 d; do
		[ -d "$W/$d" ] && mkdir -p "$R/$d" && cp -r "$W/$d"/. "$R/$d/" 2>/dev/null
	done
	cp "$W/log" "$R/prog.log" 2>/dev/null
	echo "== program log"; cat "$W/log" 2>/dev/null
	echo "failures: $fails"
	exit $((fails > 0))
}
showlog() { # DIR LOGNAME: the tracker's lines of a gockpt log
	grep -iE 'tracker|soft-dirty|incremental|parent|warn|error|frozen' "$W/$1/$2" | sed 's/^/  | /' | head -40
}

echo "== kernel: $(uname -r)"
echo "\$ gockpt check --feature mem_dirty_track"
./gockpt check --feature mem_dirty_track | tee "$W/check.txt"
./gockpt check --feature soft_dirty
./gockpt check --feature pagemap_scan
works=$(sed -n 's/.*trackers that work: \([^;)]*\).*/\1/p' "$W/check.txt")
case " ${works//,/ } " in
*" $want "*) pass "check lists $want among the trackers that work ($works)" ;;
*) fail "check does not list $want among the trackers that work: '$works'" ;;
esac

ctx=$(cat progctx 2>/dev/null)
if [ -n "$ctx" ]; then
	runcon -t "$ctx" ./prog "$W/log" </dev/null >/dev/null 2>&1 &
else
	./prog "$W/log" </dev/null >/dev/null 2>&1 &
fi
P=$!
waitlog '^ready' 120 || { fail "the program did not start"; finish; }
read -r _ addr npages < <(grep '^ready' "$W/log")
echo "program $P ($(tr -d '\0' < /proc/$P/attr/current 2>/dev/null)): area $addr, $npages pages"

gk pre-dump -t "$P" -D "$W/p1" --track-mem --timeout 0 -v4 --display-stats || { fail "pre-dump 1"; finish; }
showlog p1 pre-dump.log
echo "  gockpt-track.json: $(tr -d ' \n' < "$W/p1/gockpt-track.json" | cut -c1-300)"
backend=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["backend"])' "$W/p1/gockpt-track.json")
if [ "$backend" = "$want" ]; then pass "pre-dump 1 chose $backend"; else fail "pre-dump 1 chose '$backend', want $want"; fi
./gockpt image decode -i "$W/p1/pagemap-$P.img" > "$W/p1.json"
if python3 pages.py "$W/p1.json" "$addr" "$npages" all; then pass "pre-dump 1 holds every page of the area"; else fail "pre-dump 1 pages"; fi

kill -USR1 "$P"
waitlog '^wrote 1' 60 || { fail "the program did not write set 1"; finish; }
set1=$(sed -n 's/^wrote 1 //p' "$W/log" | tr ' ' ,)
gk pre-dump -t "$P" -D "$W/p2" --track-mem --prev-images-dir ../p1 --timeout 0 -v4 --display-stats || { fail "pre-dump 2"; finish; }
showlog p2 pre-dump.log
backend=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["backend"])' "$W/p2/gockpt-track.json")
[ "$backend" = "$want" ] || fail "pre-dump 2 chose '$backend', want $want"
./gockpt image decode -i "$W/p2/pagemap-$P.img" > "$W/p2.json"
if python3 pages.py "$W/p2.json" "$addr" "$npages" "$set1"; then pass "pre-dump 2 holds exactly the pages written after pre-dump 1"; else fail "pre-dump 2 pages"; fi

kill -USR1 "$P"
waitlog '^wrote 2' 60 || { fail "the program did not write set 2"; finish; }
set2=$(sed -n 's/^wrote 2 //p' "$W/log" | tr ' ' ,)
if gk dump -t "$P" -D "$W/d" --track-mem --prev-images-dir ../p2 --timeout 0 -v4 --display-stats; then
	wait "$P" 2>/dev/null
	showlog d dump.log
	./gockpt image decode -i "$W/d/pagemap-$P.img" > "$W/d.json"
	if python3 pages.py "$W/d.json" "$addr" "$npages" "$set2"; then pass "the final dump holds exactly the pages written after pre-dump 2"; else fail "final dump pages"; fi
else
	fail "final dump"
	finish
fi

if gk restore -D "$W/d" -d; then
	kill -USR2 "$P"
	if waitlog '^\(OK\|BAD\) 1' 120 && grep -q '^OK 1' "$W/log"; then
		pass "the restored program finds every page right"
	else
		fail "the restored program: $(grep -E '^(OK|BAD) 1' "$W/log" || echo 'no answer')"
	fi
else
	fail "restore"
	tail -20 "$W/d/restore.log" 2>/dev/null
	P=
fi
finish
JOB

rc=0
"$vmdir/run-in-vm.sh" "$job" "$out" >/dev/null || rc=$?
cat "$out/out.log" 2>/dev/null || true
[ -n "${KEEP:-}" ] && echo "results kept in $out/results"
npass=$(grep -c '^PASS:' "$out/out.log" 2>/dev/null || true)
nfail=$(grep -c '^FAIL:' "$out/out.log" 2>/dev/null || true)
if [ "$rc" = 0 ] && [ "${nfail:-0}" = 0 ] && [ "${npass:-0}" -ge 6 ]; then
	echo "vm-softdirty: PASS ($npass checks: soft-dirty chosen, exact pages per iteration, restore correct)"
else
	echo "vm-softdirty: FAIL (job rc $rc, $npass passed, $nfail failed)"
	exit 1
fi
