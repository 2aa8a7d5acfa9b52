/*
 * zdtmtst: the small helper library every C zdtm test links.
 *
 * Protocol with the runner (test/zdtm/runner):
 *   the runner starts "test -p PIDFILE" with stdin on /dev/null and stdout and
 *   stderr on the test's output file. zt_init() forks: the child calls setsid()
 *   and becomes the test's root task; the launcher waits until the child calls
 *   zt_ready() (which writes PIDFILE) and exits with 0, so the runner knows the
 *   state is set up once the launcher has exited. The runner then checkpoints
 *   and restores the tree and sends SIGTERM to the root; the test checks its
 *   state and prints "PASS" or one "FAIL: ..." line per difference.
 */
#ifndef ZDTMTST_H
#define ZDTMTST_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stddef.h>
#include <stdint.h>

/* Set by the SIGTERM handler: the runner asks the test to check and finish. */
extern volatile sig_atomic_t zt_stop;

/* Parses the arguments, forks the root task into its own session. */
void zt_init(int argc, char **argv);
/* State is set up: write the pid file and release the launcher. */
void zt_ready(void);
/* Sleep until SIGTERM arrives (futex wait: leaves the signal mask alone). */
void zt_wait_term(void);

/* Record a difference; prints "FAIL: ..." (the test goes on checking). */
void zt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Before zt_ready: this machine cannot set up the test's state (say why);
 * the runner counts the test as skipped, not passed. Does not return. */
void zt_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* The exit status zt_skip ends with, and the launcher passes on. */
#define ZT_SKIP_STATUS 77
/* A line of information that the runner ignores ("# ..."). */
void zt_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print PASS unless something failed; returns the exit code to use. */
int zt_finish(void);
/* How many zt_fail calls so far. */
int zt_failures(void);

/* Deterministic byte patterns: pattern_fill/pattern_check with a seed. */
void zt_pattern_fill(void *buf, size_t len, uint32_t seed);
/* Returns the offset of the first differing byte, or -1 if all match. */
long zt_pattern_check(const void *buf, size_t len, uint32_t seed);
/* zt_fail with the offset when a pattern differs; returns 0 on a match. */
int zt_pattern_expect(const char *what, const void *buf, size_t len, uint32_t seed);

/* Read a whole small file into buf (NUL-terminated); returns length or -1. */
long zt_read_file(const char *path, char *buf, size_t size);
/* The value of "Key:" in /proc/self/status (or the task's status file). */
int zt_status_field(const char *path, const char *key, char *out, size_t size);

/* The path argument of -p, and the directory the test runs in. */
extern const char *zt_pidfile;

#endif
