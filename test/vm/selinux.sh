#!/usr/bin/env bash
# SELinux in the shared test VM (Debian's 6.1 kernel, enforcing): the job
# test/vm/selinux-job.sh checks, with one PASS/FAIL line each, that
#   1. a single-threaded and a multi-threaded (5 threads) program confined
#      in vmtest_a_t are dumped and restored with the same PID, TIDs and
#      label in every thread, run on, and pass their own checks; and that
#      the kernel log has no AVC denial for those dumps and restores;
#   2. restore must write the label before creating threads: with the label
#      written after them (GOCKPT_TEST_LABEL_AFTER_THREADS=1) the kernel
#      refuses the multi-threaded unconfined_t -> vmtest_a_t transition with
#      EPERM and logs security_bounded_transition; in gockpt's order the same
#      images restore;
#   3. the parasite's control socket carries the target's label: for a
#      program in vmtest_s_t (selinux-sock.cil: may connect only to
#      vmtest_s_t sockets), a dump with the socket left unlabelled
#      (GOCKPT_TEST_NO_SOCKET_LABEL=1) fails with an AVC denial of
#      connectto and leaves the program unharmed; the normal dump and
#      restore succeed without a denial.
# Usage: test/vm/selinux.sh (builds the VM on first use, ~2 min; then ~2-3
# min, most of it semodule in the VM). KEEP=DIR keeps the job's output there.
set -euo pipefail
cd "$(dirname "$0")/../.."
vmdir=$(cd ../shared/vm && pwd)
VM=${VM:-${TMPDIR:-/tmp}/gockpt-vm}
[ -f "$VM/root.img" ] || "$vmdir/make-vm.sh"
job=$(mktemp -d /tmp/gockpt-vmjob.XXXXXX)
out=${KEEP:-$(mktemp -d /tmp/gockpt-vmout.XXXXXX)}
if [ -n "${KEEP:-}" ]; then trap 'rm -rf "$job"' EXIT; else trap 'rm -rf "$job" "$out"' EXIT; fi
CGO_ENABLED=0 go build -o "$job/gockpt" ./cmd/gockpt
gcc -static -O2 -o "$job/prog" test/vm/selinux-prog.c
gcc -static -O2 -pthread -o "$job/threads" test/vm/selinux-threads.c
cp test/vm/selinux-job.sh "$job/run"
cp test/vm/selinux-sock.cil "$job/"
rc=0
"$vmdir/run-in-vm.sh" "$job" "$out" >/dev/null 2>"$out/run-in-vm.err" || rc=$?
if [ ! -s "$out/out.log" ]; then
	tail -20 "$out/console.log" 2>/dev/null || true
	cat "$out/run-in-vm.err"
	echo "vm-selinux: FAIL (the VM job did not run, status $rc)"
	exit 1
fi
cat "$out/out.log"
grep '^run-in-vm:' "$out/run-in-vm.err" || true
last=$(tail -1 "$out/out.log")
case $last in
"vm-selinux: PASS"*) [ "$rc" = 0 ] && exit 0 ;;
"vm-selinux: FAIL"*) ;;
*) echo "vm-selinux: FAIL (the VM job ended with status $rc before its summary)" ;;
esac
exit 1
