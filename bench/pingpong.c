/*
 * pingpong: the machine's floor for a request/reply between two processes
 * over a SOCK_SEQPACKET socket pair, 16-byte messages, blocking read/write.
 * Usage: pingpong [rounds]. Prints ns per round trip, as go test -bench does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	long rounds = argc > 1 ? atol(argv[1]) : 200000;
	int sv[2];
	char buf[16] = "0123456789abcdef";
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		close(sv[0]);
		ssize_t n;
		while ((n = read(sv[1], buf, sizeof buf)) > 0)
			if (write(sv[1], buf, n) != n)
				_exit(1);
		_exit(0);
	}
	close(sv[1]);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < rounds; i++) {
		if (write(sv[0], buf, sizeof buf) != sizeof buf || read(sv[0], buf, sizeof buf) != sizeof buf) {
			perror("ping");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	printf("BenchmarkPingPongC \t%ld\t%.0f ns/op\n", rounds, ns / rounds);
	return 0;
}
