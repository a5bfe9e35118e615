/*
 * sandbox-init: the first process of every run inside the bubblewrap sandbox.
 *
 *   sandbox-init STATUS_FD OUT_FD ERR_FD NOFILE FSIZE NPROC DATA [COMPILE] -- PROGRAM [ARGS...]
 *   COMPILE: +compile OUT_FD ERR_FD GO_FD NPROC DATA N COMPILER [ARGS...]   (N words of argv)
 *            (+compile-stdin: the compiler gets fd 0, for a waiting sandbox's hand-over)
 *   sandbox-init --adopt STATUS_FD PID STARTED_NS
 *            (a zygote's run: its init has forked the program, PID, at STARTED_NS, and execs
 *             this to wait for it and report, as pid 1, exactly as below: runtimes/zygote.c)
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
 * With a compile stage, the compiler runs first, in this same sandbox, with its own
 * output pipes, its own process and data limits, and /dev/null as its stdin. When it
 * exits, everything it left is killed and reaped, and its status is reported as
 * `compile exit ...` or `compile signal ...`. A failed compile ends the sandbox there.
 * Otherwise this process waits for one byte on GO_FD: the server sends it once it has
 * given the cgroup the run's own limits. Then the program runs as above.
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

static int fd_arg(const char *value) {
    int fd = atoi(value);
    if (fd < 3 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        fprintf(stderr, "sandbox-init: bad fd %s\n", value);
        _exit(125);
    }
    return fd;
}

struct stage {
    int out, err;            /* its stdout and stderr */
    const char *nproc, *data; /* its own process and data limits */
    char **argv;
};

/* Fork the stage's program: with null_stdin its stdin is /dev/null, else fd 0 stays. */
static pid_t start(const struct stage *st, int null_stdin) {
    pid_t child = fork();
    if (child < 0) {
        perror("sandbox-init: fork");
        _exit(125);
    }
    if (child == 0) {
        /* Its own process group: `kill 0` in the program then spares this reporter. */
        setpgid(0, 0);
        limit(RLIMIT_NPROC, st->nproc);
        limit(RLIMIT_DATA, st->data);
        if (null_stdin) {
            int null = open("/dev/null", O_RDONLY);
            if (null < 0 || dup2(null, 0) < 0) _exit(125);
            close(null);
        }
        /* dup2 clears close-on-exec on the copies; the originals close at exec. */
        if (dup2(st->out, 1) < 0 || dup2(st->err, 2) < 0) _exit(125);
        execvp(st->argv[0], st->argv);
        fprintf(stderr, "sandbox-init: cannot run %s: %s\n", st->argv[0], strerror(errno));
        _exit(127);
    }
    close(st->out);
    close(st->err);
    return child;
}

/* As pid 1 of the namespace, orphans become ours: reap them all while waiting for the
 * child, so finished background processes don't pile up as zombies against the process
 * limit. */
static int wait_for(pid_t child) {
    int status;
    for (;;) {
        pid_t done = waitpid(-1, &status, 0);
        if (done == child) return status;
        if (done < 0 && errno != EINTR) {
            perror("sandbox-init: waitpid");
            _exit(125);
        }
    }
}

/* Report a stage's end; the exit code this process would end with for it. */
static int report(int status_fd, const char *stage, int status, long long elapsed) {
    char line[80];
    int len, code;
    if (WIFSIGNALED(status)) {
        len = snprintf(line, sizeof line, "%s%ssignal %d %lld\n", stage, *stage ? " " : "",
                       WTERMSIG(status), elapsed);
        code = 128 + WTERMSIG(status);
    } else {
        len = snprintf(line, sizeof line, "%s%sexit %d %lld\n", stage, *stage ? " " : "",
                       WEXITSTATUS(status), elapsed);
        code = WEXITSTATUS(status);
    }
    if (write(status_fd, line, len) != len) _exit(125);
    return code;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--adopt") == 0) {
        int status_fd = atoi(argv[2]);
        pid_t child = (pid_t)atoi(argv[3]);
        long long started = atoll(argv[4]);
        if (status_fd < 3 || child < 2 || fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0) goto usage;
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        int status = wait_for(child);
        return report(status_fd, "", status, now_ns() - started);
    }
    if (argc < 10) goto usage;
    int status_fd = atoi(argv[1]);
    if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0) {
        perror("sandbox-init: fds");
        return 125;
    }
    struct stage run = {fd_arg(argv[2]), fd_arg(argv[3]), argv[6], argv[7], NULL};
    struct stage build = {-1, -1, NULL, NULL, NULL};
    int go_fd = -1, at = 8;
    int compile_stdin = strcmp(argv[at], "+compile-stdin") == 0;
    if (compile_stdin || strcmp(argv[at], "+compile") == 0) {
        if (argc < at + 8) goto usage;
        build.out = fd_arg(argv[at + 1]);
        build.err = fd_arg(argv[at + 2]);
        go_fd = fd_arg(argv[at + 3]);
        build.nproc = argv[at + 4];
        build.data = argv[at + 5];
        int words = atoi(argv[at + 6]);
        if (words < 1 || at + 7 + words >= argc) goto usage;
        build.argv = calloc(words + 1, sizeof(char *));
        if (!build.argv) return 125;
        memcpy(build.argv, &argv[at + 7], words * sizeof(char *));
        at += 7 + words;
    }
    if (strcmp(argv[at], "--") != 0 || at + 1 >= argc) goto usage;
    run.argv = &argv[at + 1];
    limit(RLIMIT_NOFILE, argv[4]);
    limit(RLIMIT_FSIZE, argv[5]);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    /* Not dumpable: the program runs as the same uid, and could otherwise open
     * /proc/1/fd/STATUS_FD and write a fake verdict. (Each exec'd child is dumpable
     * again, as any program is.) */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    if (build.argv) {
        long long started = now_ns();
        int status = wait_for(start(&build, !compile_stdin));
        long long elapsed = now_ns() - started;
        /* Nothing of the compile outlives it: the run starts in an empty sandbox. */
        kill(-1, SIGKILL);
        while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
        }
        int code = report(status_fd, "compile", status, elapsed);
        if (code != 0) return code;
        char go;
        ssize_t got;
        do got = read(go_fd, &go, 1);
        while (got < 0 && errno == EINTR);
        if (got != 1) return 125; /* the server is gone, or gave up on the run */
        close(go_fd);
    }

    long long started = now_ns();
    pid_t child = start(&run, 0);
    close(0); /* the program's stdin, too, is the program's alone */
    int status = wait_for(child);
    return report(status_fd, "", status, now_ns() - started);

usage:
    fprintf(stderr, "usage: sandbox-init STATUS_FD OUT_FD ERR_FD NOFILE FSIZE NPROC DATA"
                    " [+compile OUT_FD ERR_FD GO_FD NPROC DATA N COMPILER...] -- PROGRAM [ARGS...]\n"
                    "       sandbox-init --adopt STATUS_FD PID STARTED_NS\n");
    return 125;
}
