// zdtm: desc: current directory (a nested path with a space) and umask 027; a file created after restore gets mode 0640
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	char want[4096], got[4096];
	struct stat st;

	zt_init(argc, argv);
	mkdir("work dir", 0755);
	mkdir("work dir/deeper", 0755);
	if (chdir("work dir/deeper") || !getcwd(want, sizeof(want)))
		return 1;
	umask(027);
	zt_ready();
	zt_wait_term();
	if (!getcwd(got, sizeof(got)) || strcmp(got, want))
		zt_fail("cwd %s, want %s", got, want);
	mode_t m = umask(0);
	umask(m);
	if (m != 027)
		zt_fail("umask 0%o, want 027", m);
	int fd = open("new.dat", O_CREAT | O_WRONLY, 0666);
	if (fd < 0 || fstat(fd, &st) || (st.st_mode & 0777) != 0640)
		zt_fail("new file mode 0%o, want 0640", st.st_mode & 0777);
	return zt_finish();
}
