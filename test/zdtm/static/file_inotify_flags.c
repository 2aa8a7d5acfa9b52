// zdtm: desc: file_inotify with IN_ONESHOT on the third file's watch and IN_EXCL_UNLINK on the second instance's: the masks keep them after restore (fdinfo) and the one-shot watch goes after its first event (not in CRIU modes: CRIU 4.2 restores a watch with its mask cut to IN_ALL_EVENTS)
// zdtm: modes: restore snapshot twice predump
#define ONESHOT IN_ONESHOT
#define EXCL_UNLINK IN_EXCL_UNLINK
#include <sys/inotify.h>
#include "file_inotify.c"
