/*
 * sandbox-init: the first process of every run inside the bubblewrap sandbox.
 *
 *   sandbox-init STATUS_FD OUT_FD ERR_FD NOFILE FSIZE NPROC DATA -- PROGRAM [ARGS...]
 *
 * It runs as pid 1 of the sandbox's pid namespace (bwrap --as-pid-1), so the
 * program can't signal it, and its exit ends every process left in the sandbox.
 * It exists because bwrap reports a signalled child as exit 128+n, which
 * can't be told apart from `exit 137`. This process sets the rlimits, runs
 * the program as its child, and writes the real wait status and the
 * program's own wall time to STATUS_FD:
 *
 *   exit CODE NANOSECONDS\n   or   signal NUMBER NANOSECONDS\n
 *
 * STATUS_FD is close-on-exec, so the program itself sees only fds 0, 1, 2.
 * The program's stdout and stderr arrive as OUT_FD and ERR_FD, not as this process's
 * own 1 and 2 (those are bwrap's, kept for setup errors): only the program and its
 * children hold the output pipes, so the server sees them end the moment the program
 * and its children are done, without waiting for bwrap and the namespaces to go.
 * A limit of 0 leaves that rlimit as it is (DATA is only the fallback when
 * the host has no memory cgroup). Kept tiny and dependency-free on purpose.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void limit(int resource, const char *value) {
    char *end;
    unsigned long long n = strtoull(value, &end, 10);
    if (*end != '\0') {
        fprintf(stderr, "sandbox-init: bad limit %s\n", value);
        _exit(125);
    }
    if (n == 0) return;
    struct rlimit rl = {.rlim_cur = n, .rlim_max = n};
    if (setrlimit(resource, &rl) != 0) {
        perror("sandbox-init: setrlimit");
        _exit(125);
    }
}

int main(int argc, char **argv) {
    if (argc < 10 || strcmp(argv[8], "--") != 0) {
        fprintf(stderr,
                "usage: sandbox-init STATUS_FD OUT_FD ERR_FD NOFILE FSIZE NPROC DATA -- PROGRAM [ARGS...]\n");
        return 125;
    }
    int status_fd = atoi(argv[1]), out_fd = atoi(argv[2]), err_fd = atoi(argv[3]);
    if (out_fd < 3 || err_fd < 3 || fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(out_fd, F_SETFD, FD_CLOEXEC) != 0 || fcntl(err_fd, F_SETFD, FD_CLOEXEC) != 0) {
        perror("sandbox-init: fds");
        return 125;
    }
    limit(RLIMIT_NOFILE, argv[4]);
    limit(RLIMIT_FSIZE, argv[5]);
    limit(RLIMIT_NPROC, argv[6]);
    limit(RLIMIT_DATA, argv[7]);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);

    long long started = now_ns();
    pid_t child = fork();
    if (child < 0) {
        perror("sandbox-init: fork");
        return 125;
    }
    if (child == 0) {
        /* Its own process group: `kill 0` in the program then spares this reporter. */
        setpgid(0, 0);
        /* dup2 clears close-on-exec on the copies; the originals close at exec. */
        if (dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) _exit(125);
        execvp(argv[9], &argv[9]);
        fprintf(stderr, "sandbox-init: cannot run %s: %s\n", argv[9], strerror(errno));
        _exit(127);
    }
    close(out_fd);
    close(err_fd);
    close(0); /* the program's stdin, too, is the program's alone */

    /* As pid 1 of the namespace, orphans become ours: reap them all, so finished
     * background processes don't pile up as zombies against the process limit. */
    /* Not dumpable: the program runs as the same uid, and could otherwise open
     * /proc/1/fd/STATUS_FD and write a fake verdict. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    int status;
    for (;;) {
        pid_t done = waitpid(-1, &status, 0);
        if (done == child) break;
        if (done < 0 && errno != EINTR) {
            perror("sandbox-init: waitpid");
            return 125;
        }
    }
    long long elapsed = now_ns() - started;
    char line[64];
    int len, code;
    if (WIFSIGNALED(status)) {
        len = snprintf(line, sizeof line, "signal %d %lld\n", WTERMSIG(status), elapsed);
        code = 128 + WTERMSIG(status);
    } else {
        len = snprintf(line, sizeof line, "exit %d %lld\n", WEXITSTATUS(status), elapsed);
        code = WEXITSTATUS(status);
    }
    if (write(status_fd, line, len) != len) return 125;
    return code;
}
