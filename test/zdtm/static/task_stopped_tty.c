// zdtm: desc: job-control stops by the terminal signals: children stopped by SIGTTIN and SIGTTOU (and one with 3 threads by SIGTTOU) stay stopped across checkpoint (/proc state T), the parent's waitpid(WUNTRACED) reports each one's own stop signal, and SIGCONT resumes them
// zdtm: modes: restore snapshot twice predump criu-restore criu-predump
/* Not criu-dump: CRIU 4.2 refuses to seize these ("SEIZE: unsupported stop
 * signal 21"). */
#define STOP_SIGS {SIGTTIN, SIGTTOU, SIGTTOU}
#include "task_stopped.c"
