// zdtm: desc: signal dispositions: handlers with SA_SIGINFO/SA_RESTART/SA_NODEFER/SA_RESETHAND/SA_ONSTACK, per-handler masks, ignored signals, restorer; compared and exercised after SIGTERM
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile int hits[_NSIG];
static volatile int last_code;

static void h_plain(int sig)
{
	hits[sig]++;
}

static void h_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	hits[sig]++;
	last_code = si->si_code;
}

struct setup {
	int sig;
	void *handler;
	int flags;
	int mask[3];
};

static struct setup setups[] = {
	{ SIGUSR1, (void *)h_info, SA_SIGINFO | SA_RESTART, { SIGUSR2, SIGHUP, 0 } },
	{ SIGUSR2, (void *)h_plain, SA_NODEFER | SA_RESETHAND, { SIGINT, 0 } },
	{ SIGHUP, (void *)SIG_IGN, 0, { 0 } },
	{ SIGQUIT, (void *)h_plain, SA_ONSTACK, { SIGALRM, SIGWINCH, SIGPIPE } },
	{ SIGWINCH, (void *)h_plain, 0, { 0 } },
	{ 0, NULL, 0, { 0 } }, /* SIGRTMIN+3, filled in main */
	{ 0, NULL, 0, { 0 } }, /* SIGRTMAX, filled in main */
};
#define N (sizeof(setups) / sizeof(setups[0]))

int main(int argc, char **argv)
{
	struct sigaction want[N];

	zt_init(argc, argv);
	setups[5] = (struct setup){ SIGRTMIN + 3, (void *)h_info, SA_SIGINFO, { SIGRTMIN + 4, SIGUSR1, 0 } };
	setups[6] = (struct setup){ SIGRTMAX, (void *)SIG_IGN, SA_RESTART, { SIGRTMIN, 0 } };
	for (size_t i = 0; i < N; i++) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = (void (*)(int))setups[i].handler;
		sa.sa_flags = setups[i].flags;
		sigemptyset(&sa.sa_mask);
		for (int j = 0; j < 3 && setups[i].mask[j]; j++)
			sigaddset(&sa.sa_mask, setups[i].mask[j]);
		if (sigaction(setups[i].sig, &sa, NULL))
			zt_fail("sigaction %d", setups[i].sig);
		sigaction(setups[i].sig, NULL, &want[i]);
	}
	zt_ready();
	zt_wait_term();
	for (size_t i = 0; i < N; i++) {
		struct sigaction got;
		int sig = setups[i].sig;

		sigaction(sig, NULL, &got);
		if (got.sa_handler != want[i].sa_handler)
			zt_fail("signal %d: handler %p, want %p", sig, (void *)got.sa_handler, (void *)want[i].sa_handler);
		if (got.sa_flags != want[i].sa_flags)
			zt_fail("signal %d: flags 0x%x, want 0x%x", sig, got.sa_flags, want[i].sa_flags);
		if (got.sa_restorer != want[i].sa_restorer)
			zt_fail("signal %d: restorer %p, want %p", sig, (void *)got.sa_restorer, (void *)want[i].sa_restorer);
		for (int s = 1; s < _NSIG; s++)
			if (sigismember(&got.sa_mask, s) != sigismember(&want[i].sa_mask, s))
				zt_fail("signal %d: mask bit %d differs", sig, s);
	}
	/* The dispositions must also work. */
	raise(SIGUSR1);
	if (hits[SIGUSR1] != 1 || last_code != SI_TKILL)
		zt_fail("SIGUSR1 handler: %d hits, si_code %d", hits[SIGUSR1], last_code);
	raise(SIGUSR2);
	struct sigaction now;
	sigaction(SIGUSR2, NULL, &now);
	if (hits[SIGUSR2] != 1 || now.sa_handler != SIG_DFL)
		zt_fail("SIGUSR2 with SA_RESETHAND: %d hits, handler now %p", hits[SIGUSR2], (void *)now.sa_handler);
	raise(SIGHUP);
	raise(SIGRTMAX);
	raise(SIGRTMIN + 3);
	if (hits[SIGRTMIN + 3] != 1)
		zt_fail("SIGRTMIN+3 handler did not run");
	return zt_finish();
}
