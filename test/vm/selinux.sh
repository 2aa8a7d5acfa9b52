#!/usr/bin/env bash
# Dump and restore a process confined by SELinux (enforcing, Debian 6.1
# kernel, in the shared test VM): the restored process must have the same
# PID and label and run on with its memory intact. Usage: test/vm/selinux.sh
# (builds the VM on first use, ~2 min).
set -euo pipefail
cd "$(dirname "$0")/../.."
vmdir=$(cd ../shared/vm && pwd)
VM=${VM:-${TMPDIR:-/tmp}/gockpt-vm}
[ -f "$VM/root.img" ] || "$vmdir/make-vm.sh"
job=$(mktemp -d /tmp/gockpt-vmjob.XXXXXX)
out=$(mktemp -d /tmp/gockpt-vmout.XXXXXX)
trap 'rm -rf "$job" "$out"' EXIT
CGO_ENABLED=0 go build -o "$job/gockpt" ./cmd/gockpt
gcc -static -O2 -o "$job/prog" test/vm/selinux-prog.c
cat > "$job/run" <<'JOB'
cd /job
mkdir -p /tmp/w && chmod 777 /tmp/w
runcon -t vmtest_a_t ./prog /tmp/w/log </dev/null >/dev/null 2>&1 &
P=$!
sleep 2
echo "before: $P $(cat /proc/$P/attr/current)"
./gockpt dump -t $P -D /tmp/w/img || { kill -9 $P; exit 1; }
wait $P 2>/dev/null || true
timeout 60 ./gockpt restore -D /tmp/w/img -d || exit 1
n=$(wc -l < /tmp/w/log)
sleep 2
echo "after: $P $(cat /proc/$P/attr/current 2>/dev/null)"
echo "lines: $n -> $(wc -l < /tmp/w/log)"
grep -c BAD /tmp/w/log && exit 1
kill -9 $P
exit 0
JOB
"$vmdir/run-in-vm.sh" "$job" "$out" >/dev/null || { cat "$out/out.log"; echo "vm-selinux: FAIL (job)"; exit 1; }
cat "$out/out.log"
before=$(sed -n 's/^before: //p' "$out/out.log")
after=$(sed -n 's/^after: //p' "$out/out.log")
read -r n1 _ n2 < <(sed -n 's/^lines: //p' "$out/out.log")
if [ -n "$before" ] && [ "$before" = "$after" ] && [ "$n2" -gt "$n1" ]; then
	echo "vm-selinux: PASS (same PID and label after restore, still running)"
else
	echo "vm-selinux: FAIL"
	exit 1
fi
