# The job test/vm/selinux.sh runs in the test VM (bash, as
# unconfined_u:unconfined_r:unconfined_t, SELinux enforcing), from /job:
# gockpt, prog (selinux-prog.c), threads (selinux-threads.c) and
# selinux-sock.cil are there. It prints one PASS or FAIL line per check and
# exits 1 if any check failed.
W=/tmp/w
rm -rf "$W"
mkdir -p "$W"
chmod 777 "$W"
GCTX=$(tr -d '\0' </proc/self/attr/current) # gockpt runs here
ACTX=unconfined_u:unconfined_r:vmtest_a_t:s0-s0:c0.c1023
SCTX=unconfined_u:unconfined_r:vmtest_s_t:s0-s0:c0.c1023
fails=0 checks=0
pass() { checks=$((checks + 1)); echo "PASS: $*"; }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL: $*"; }
indent() { sed 's/^/    /'; }
label() { tr -d '\0' <"/proc/$1/attr/current" 2>/dev/null; }
# tids PID: "TID LABEL" per thread, sorted
tids() {
	local t
	for t in /proc/$1/task/*; do
		echo "${t##*/} $(tr -d '\0' <"$t/attr/current" 2>/dev/null)"
	done | sort -n
}
# start TYPE PROG ARGS...: runs PROG in domain TYPE, orphaned (init reaps
# it, so the job prints no "Killed" lines); prints its PID.
start() {
	local type=$1
	shift
	( runcon -t "$type" "$@" </dev/null >/dev/null 2>&1 & echo $! )
}
# abort WHAT: a check that the rest depends on failed
abort() {
	fail "$*"
	echo "vm-selinux: FAIL ($fails of $checks checks failed; the rest was not run)"
	exit 1
}
# count LOG PATTERN: lines of LOG matching PATTERN (0 if LOG is missing)
count() {
	local n
	n=$(grep -c -- "$2" "$1" 2>/dev/null)
	echo "${n:-0}"
}
# gone PID: wait until PID is dead and reaped (its PID free again)
gone() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -e "/proc/$1" ] || return 0
		sleep 0.1
	done
	return 1
}
# waitlines LOG PATTERN N: wait until LOG has N lines matching PATTERN
waitlines() {
	local i
	for ((i = 0; i < 150; i++)); do
		[ "$(count "$1" "$2")" -ge "$3" ] && return 0
		sleep 0.1
	done
	return 1
}
# gk ARGS...: run gockpt, show the command and its output (in $W/out)
gk() {
	echo "  \$ ${GKENV:+$GKENV }gockpt $*"
	env $GKENV timeout 300 ./gockpt "$@" >"$W/out" 2>&1
	local rc=$?
	indent <"$W/out"
	return $rc
}
# gkok ARGS...: run gockpt; its failure is fatal
gkok() { gk "$@" || abort "gockpt $*"; }
# kernel log: AVC denials and SELinux errors since the last klog_clear
klog_clear() { dmesg -C; }
klog_denials() {
	sleep 1 # kauditd prints asynchronously
	dmesg | grep -E 'avc: +denied|seresult=denied' | sed 's/^\[[ 0-9.]*\] //'
}
# grows LOG PATTERN: LOG gets 3 more lines matching PATTERN
grows() { waitlines "$1" "$2" $(($(count "$1" "$2") + 3)); }

echo "== 1. a single-threaded and a multi-threaded process in vmtest_a_t: dump and restore"
P=$(start vmtest_a_t ./prog "$W/log")
T=$(start vmtest_a_t ./threads "$W/tlog" 4)
waitlines "$W/log" '^ok' 3 || abort "prog $P does not run"
for i in 0 1 2 3 4; do
	waitlines "$W/tlog" "^t$i .* ok" 2 || abort "threads $T: thread t$i does not run"
done
pbefore="$P $(label "$P")"
tbefore=$(tids "$T")
echo "  prog $P: $(label "$P")"
echo "  threads $T:"
indent <<<"$tbefore"
klog_clear
gkok dump -t "$P" -D "$W/p"
gkok dump -t "$T" -D "$W/t"
gone "$P" && gone "$T" || abort "the dumped processes did not go away"
gkok restore -D "$W/p" -d
gkok restore -D "$W/t" -d
denials=$(klog_denials)
pafter="$P $(label "$P")"
tafter=$(tids "$T")
if [ "$pafter" = "$pbefore" ] && [ "${pafter#* }" = "$ACTX" ] && grows "$W/log" '^ok' && ! grep -q BAD "$W/log"; then
	pass "single-threaded: same PID and label after restore ($pafter), running, no BAD line"
else
	fail "single-threaded: before '$pbefore', after '$pafter'; log: $(tail -1 "$W/log")"
fi
want=$(for t in $(cut -d' ' -f1 <<<"$tbefore"); do echo "$t $ACTX"; done)
if [ "$tafter" = "$tbefore" ] && [ "$tafter" = "$want" ] && [ "$(wc -l <<<"$tafter")" = 5 ]; then
	pass "multi-threaded: the same 5 TIDs after restore, each labelled vmtest_a_t ($(cut -d' ' -f1 <<<"$tafter" | tr '\n' ' '| sed 's/ $//'))"
else
	fail "multi-threaded: threads before and after restore differ"
	echo "  after:"
	indent <<<"$tafter"
fi
ok=1
for i in 0 1 2 3 4; do
	grows "$W/tlog" "^t$i .* ok" || { ok=0; echo "  thread t$i did not run on: $(grep "^t$i " "$W/tlog" | tail -1)"; }
done
if [ $ok = 1 ] && ! grep -q BAD "$W/tlog"; then
	pass "multi-threaded: every thread runs on after restore and passes its checks (TID, TLS, heap, stack, signal mask)"
else
	fail "multi-threaded: $(grep -m1 BAD "$W/tlog")"
fi
if [ -z "$denials" ]; then
	pass "no AVC denial in the kernel log during both dumps and restores"
else
	fail "the kernel log has denials during the dumps and restores:"
	indent <<<"$denials"
fi

echo "== 2. setcon before threads, proven by the kernel: restore the multi-threaded process"
echo "   (restore runs as unconfined_t; unconfined_t -> vmtest_a_t is allowed to single-threaded tasks only)"
kill -9 "$T"
gone "$T" || abort "threads $T did not go away"
klog_clear
GKENV=GOCKPT_TEST_LABEL_AFTER_THREADS=1 gk restore -D "$W/t" -d
rc=$?
denials=$(klog_denials)
want="Error: task $T: security label: task $T thread $T: write label $ACTX: operation not permitted"
eperm=0
if [ $rc != 0 ] && [ "$(head -1 "$W/out")" = "$want" ]; then
	eperm=1
	pass "label written after the threads: restore fails with EPERM"
else
	fail "label written after the threads: rc $rc, want the first line: $want"
fi
want="op=security_bounded_transition seresult=denied oldcontext=$GCTX newcontext=$ACTX"
if grep -qF "$want" <<<"$denials" && [ "$(wc -l <<<"$denials")" = 1 ]; then
	pass "the kernel refused it as a multi-threaded transition, and logged nothing else: $(grep -oF "$want" <<<"$denials")"
else
	fail "kernel log: want only a line with '$want', got:"
	indent <<<"$denials"
fi
if [ $eperm = 1 ] && [ ! -e "/proc/$T" ]; then
	pass "the failed restore left nothing behind (PID $T is free)"
else
	fail "after the restore with the label written late: /proc/$T: $(ls -d "/proc/$T" 2>&1)"
fi
klog_clear
gkok restore -D "$W/t" -d
denials=$(klog_denials)
tafter=$(tids "$T")
if [ "$tafter" = "$tbefore" ] && grows "$W/tlog" '^t4 .* ok' && ! grep -q BAD "$W/tlog" && [ -z "$denials" ]; then
	pass "label written before the threads (gockpt's order), same images: restored, the same 5 threads labelled vmtest_a_t, running, no denial"
else
	fail "restore in gockpt's order: threads, then denials:"
	printf '%s\n%s\n' "$tafter" "$denials" | indent
fi
kill -9 "$P" "$T"

echo "== 3. the parasite's socket carries the target's label"
echo "   (vmtest_s_t: vmtest_a_t whose unix stream sockets may connect only to vmtest_s_t sockets)"
cp selinux-sock.cil /root/ && restorecon /root/selinux-sock.cil
s=$SECONDS
if semodule -i /root/selinux-sock.cil 2>&1 | grep -v 'user sddm not in password file' | indent; [ "${PIPESTATUS[0]}" = 0 ]; then
	echo "  loaded selinux-sock.cil ($((SECONDS - s)) s)"
else
	abort "semodule -i selinux-sock.cil"
fi
S=$(start vmtest_s_t ./prog "$W/slog")
waitlines "$W/slog" '^ok' 3 || abort "prog $S does not run in vmtest_s_t"
sbefore="$S $(label "$S")"
echo "  prog $S: $(label "$S")"
klog_clear
GKENV=GOCKPT_TEST_NO_SOCKET_LABEL=1 gk dump -t "$S" -D "$W/s-nolabel"
rc=$?
denials=$(klog_denials)
re="^Error: task $S: inject parasite: task $S: parasite did not connect \(status unknown\): accept unixpacket @gockpt-parasite-[0-9]+-$S-[0-9a-f]{16}: i/o timeout$"
if [ $rc != 0 ] && head -1 "$W/out" | grep -qE "$re"; then
	pass "socket left with gockpt's label (GOCKPT_TEST_NO_SOCKET_LABEL=1): the dump fails, the parasite cannot connect"
else
	fail "socket without the target's label: rc $rc, want a first line matching: $re"
fi
want="denied  { connectto } for  pid=$S comm=\"prog\" path=[0-9A-F]* scontext=$SCTX tcontext=$GCTX tclass=unix_stream_socket permissive=0"
if grep -qE "$want" <<<"$denials" && [ "$(wc -l <<<"$denials")" = 1 ]; then
	pass "the kernel log has the parasite's denied connect, and nothing else:"
	grep -oE "avc: .*" <<<"$denials" | indent
else
	fail "kernel log: want only an AVC matching '$want', got:"
	indent <<<"$denials"
fi
if [ "$S $(label "$S")" = "$sbefore" ] && grows "$W/slog" '^ok' && ! grep -q BAD "$W/slog" && ! grep -q gockpt "/proc/$S/maps"; then
	pass "the target is unharmed: same PID and label, running, no parasite mapping left"
else
	fail "the target after the failed dump: '$S $(label "$S")', log $(tail -1 "$W/slog")"
fi
klog_clear
gkok dump -t "$S" -D "$W/s"
gone "$S" || abort "prog $S did not go away"
gkok restore -D "$W/s" -d
denials=$(klog_denials)
if [ "$S $(label "$S")" = "$sbefore" ] && grows "$W/slog" '^ok' && ! grep -q BAD "$W/slog" && [ -z "$denials" ]; then
	pass "socket with the target's label (gockpt's way): dump and restore succeed, same PID and label, running, no denial"
else
	fail "socket with the target's label: '$S $(label "$S")', denials:"
	indent <<<"$denials"
fi
kill -9 "$S"

if [ $fails = 0 ]; then
	echo "vm-selinux: PASS ($checks checks)"
	exit 0
fi
echo "vm-selinux: FAIL ($fails of $checks checks failed)"
exit 1
