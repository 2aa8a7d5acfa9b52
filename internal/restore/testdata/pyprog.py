# Restore test target: threads, a dict, and sleeps. Usage: pyprog.py DIR;
# writes DIR/ready, appends "ok N" or "BAD N" to DIR/log. A worker counts as
# stuck only after three seconds without progress, so that a loaded
# machine does not look like a broken restore.
import os, sys, threading, time

d = sys.argv[1]
table = {i: i * i for i in range(50000)}
counts = [0, 0, 0]

def worker(k):
    while True:
        counts[k] += 1
        time.sleep(0.002)

for k in range(3):
    threading.Thread(target=worker, args=(k,), daemon=True).start()
log = open(os.path.join(d, "log"), "a", buffering=1)
open(os.path.join(d, "ready"), "w").close()
last = list(counts)
moved = [time.monotonic()] * 3
n = 0
while True:
    time.sleep(0.02)
    now = time.monotonic()
    for k in range(3):
        if counts[k] != last[k]:
            last[k], moved[k] = counts[k], now
    ok = all(table[k] == k * k for k in range(0, 50000, 997)) and all(now - m < 3.0 for m in moved)
    log.write("%s %d\n" % ("ok" if ok else "BAD", n))
    n += 1
