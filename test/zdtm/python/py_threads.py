# zdtm: desc: a Python program: threads updating counters under a lock, a large dict with a checksum, a SIGTERM handler; threads still run, data intact after restore
# zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
"""zdtm test for the CPython interpreter's state.

Run as python3 py_threads.py -p PIDFILE: forks the test's root task into its
own session, which writes PIDFILE once set up and on SIGTERM prints PASS or
FAIL lines.
"""
import os
import signal
import sys
import threading
import time
import zlib


def checksum(d):
    s = 0
    for k in sorted(d):
        s = zlib.crc32(("%d=%s" % (k, d[k])).encode(), s)
    return s


def run(pidfile, ready_w):
    term = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: term.set())
    data = {i: "v%d-%x" % (i, i * 7919) for i in range(50000)}
    want = checksum(data)
    lock = threading.Lock()
    counters = [0] * 4
    stop = threading.Event()

    def worker(n):
        local = [n] * 1000
        while not stop.is_set():
            with lock:
                counters[n] += 1
            time.sleep(0.002)
        if local != [n] * 1000:
            print("FAIL: thread %d: local list changed" % n, flush=True)
            failures.append(n)

    failures = []
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    pid = os.getpid()
    with open(pidfile + ".tmp", "w") as f:
        f.write("%d\n" % pid)
    os.rename(pidfile + ".tmp", pidfile)
    os.write(ready_w, b"R")
    os.close(ready_w)
    while not term.wait(1):
        pass

    bad = []
    with lock:
        before = list(counters)
    m0 = time.monotonic()
    time.sleep(0.2)
    if time.monotonic() - m0 < 0.2:
        bad.append("time.monotonic advanced %f over a 0.2 s sleep" % (time.monotonic() - m0))
    with lock:
        after = list(counters)
    for i in range(4):
        if after[i] - before[i] < 5:
            bad.append("thread %d: %d iterations in 0.2 s" % (i, after[i] - before[i]))
    stop.set()
    for t in threads:
        t.join(5)
        if t.is_alive():
            bad.append("thread %s did not finish" % t.name)
    if failures:
        bad.append("threads %s saw changed data" % failures)
    if checksum(data) != want or len(data) != 50000:
        bad.append("dict changed")
    if os.getpid() != pid:
        bad.append("pid %d, was %d" % (os.getpid(), pid))
    for b in bad:
        print("FAIL: " + b, flush=True)
    if not bad:
        print("PASS", flush=True)
    return 1 if bad else 0


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "-p":
        print("usage: py_threads.py -p PIDFILE", file=sys.stderr)
        return 2
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        if os.read(r, 1) == b"R":
            return 0
        _, st = os.waitpid(pid, 0)
        print("FAIL: test root exited before ready (status %#x)" % st, flush=True)
        return 1
    os.close(r)
    os.setsid()
    code = 1
    try:
        code = run(sys.argv[2], w)
    finally:
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
