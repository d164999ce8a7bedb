/*
 * x32-probe makes raw system calls through the x32 entry of an x86-64
 * kernel (the syscall instruction with bit 0x40000000 set in the number),
 * which Go cannot do, so the seccomp tests can check on the real kernel that
 * a filter covers that ABI. Kernels built without x32 still run the filter
 * before they answer ENOSYS.
 *
 * Usage: x32-probe NR A0 A1 A2 A3 A4 A5 [NR A0 ... A5]...
 *
 * Each call runs in a child of its own, so one call's effect cannot change
 * the next call's answer. Prints one line per call: the errno, 0 on
 * success, or "signal N" if the child died.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define X32_SYSCALL_BIT 0x40000000L

static long call_x32(long nr, const long a[6])
{
	long ret;
	register long r10 __asm__("r10") = a[3];
	register long r8 __asm__("r8") = a[4];
	register long r9 __asm__("r9") = a[5];
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr | X32_SYSCALL_BIT), "D"(a[0]), "S"(a[1]), "d"(a[2]), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

int main(int argc, char **argv)
{
	if (argc < 8 || (argc - 1) % 7 != 0) {
		fprintf(stderr, "usage: x32-probe NR A0 A1 A2 A3 A4 A5...\n");
		return 2;
	}
	/* The child leaves its result here for the parent. */
	long *result = mmap(NULL, sizeof(long), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (result == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	for (int c = 1; c < argc; c += 7) {
		long nr = (long)strtoull(argv[c], NULL, 0);
		long a[6];
		for (int j = 0; j < 6; j++)
			a[j] = (long)strtoull(argv[c + 1 + j], NULL, 0);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0) {
			*result = call_x32(nr, a);
			_exit(0);
		}
		int status;
		if (waitpid(pid, &status, 0) < 0) {
			perror("waitpid");
			return 2;
		}
		if (WIFSIGNALED(status))
			printf("signal %d\n", WTERMSIG(status));
		else if (*result < 0 && *result >= -4095)
			printf("%ld\n", -*result);
		else
			printf("0\n");
	}
	return 0;
}
