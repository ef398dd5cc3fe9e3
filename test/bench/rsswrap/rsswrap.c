/* rsswrap runs a command with fork (not vfork) and prints its peak RSS in
 * KiB on stderr as "maxrss_kb=N". A Go parent starts children with vfork,
 * which makes the kernel report the parent's own peak as the child's; this
 * small parent has a peak of a few hundred KiB. Exit status is the child's. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	pid_t pid = fork();
	if (pid < 0) return 2;
	if (pid == 0) {
		execv(argv[1], argv + 1);
		_exit(127);
	}
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0) return 2;
	fprintf(stderr, "maxrss_kb=%ld\n", ru.ru_maxrss);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
