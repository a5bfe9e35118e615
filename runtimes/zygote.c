/*
 * _zygote: the Python zygote's namespace work, as a CPython extension (runtimes/pool-loader.py).
 *
 * A zygote is a pre-warmed Python sandbox that serves one run after another by forking. This
 * module's one function, serve(), is its loop: it returns only in a run's own process, ready for
 * the run, and never in the zygote. Everything a run's process chain does before user code is
 * here in C, so that no Python code of the zygote runs after a fork:
 *
 *   zygote      waits on its control socket (fd 0) for a fork request: six fds the server made
 *               for a run (stdin, stdout, stderr, status, go-ahead, setup errors). It forks the
 *               run's first process, sends its pidfd back, and then reaps until it has no child
 *               left (it is a child subreaper): everything of the run is dead before it reads
 *               the next request.
 *   run's first process (in the zygote's namespaces)
 *               keeps only the six fds and waits for its first request on the go-ahead pipe (the
 *               pool's limits and /proc covers), which the server sends once it has moved it into
 *               the run's own cgroup. It is "parked": the run has not come yet. It enters new
 *               mount, pid, IPC and cgroup namespaces, makes the mounts private, and mounts a
 *               fresh tmpfs as the working directory and another on /dev/shm.
 *   run's init  (pid 1 of the new pid namespace) mounts a fresh /proc and covers it as every
 *               sandbox's is (the host facts sandbox.procfs masks), then waits for the run's own
 *               request (take_run): its covers' contents and its working directory's size. Then
 *               it sets the rlimits, drops every capability, installs the run's seccomp filter
 *               (which denies every namespace and mount call), forks the program, and execs
 *               sandbox-init --adopt, which reaps and reports the program's wait status.
 *   the program returns from serve() with fds 0, 1, 2 its own and nothing else open.
 *
 * Errors before the program runs go to the setup fd, and the process exits 125.
 */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030B0000
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKDIR "/tmp"
#define INIT "/.sandbox-init" /* sandbox.spec.INIT_PATH */
#define SHM "/dev/shm"
/* A procfs mounted whole in the zygote (sandbox/argv.py): the kernel lets a run's init mount a
 * fresh one only because it is there. Each run covers it with an empty read-only tmpfs. */
#define WHOLE_PROC "/dev/pts"
#define MAX_COVERS 64
#define FDS 6
enum { IN, OUT, ERR, STATUS, GO, SETUP };

static struct sock_fprog filter;
/* What covers a run's /proc (sandbox.procfs): a file of ours over each host fact, an empty
 * read-only tmpfs over a directory. Sent with each request, so each run's are made for it. */
struct cover {
    const char *path;
    int is_dir;
    const char *data;
    size_t size;
};

struct request {
    unsigned long long nofile, fsize, nproc, data, tmpfs, shm;
    struct cover covers[MAX_COVERS];
    int n_covers;
};

/* A request's text: its limits on the first line, then its covers, each `F SIZE PATH\n` and SIZE
 * bytes, or `D PATH\n`. Kept here, as the covers point into it. */
#define REQUEST_BYTES (1 << 20)
static char parked_text[REQUEST_BYTES + 1], run_text[REQUEST_BYTES + 1];
/* The files over the run's /proc, held open so that the run's own contents replace the parked ones. */
static int held[MAX_COVERS];

static void read_request(struct request *rq, char *text);
static void malformed(const char *what);

static void die(const char *what) {
    dprintf(SETUP, "zygote: %s: %s\n", what, strerror(errno));
    _exit(125);
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void limit(int resource, unsigned long long n) {
    if (n == 0) return;
    struct rlimit rl = {.rlim_cur = n, .rlim_max = n};
    if (setrlimit(resource, &rl) != 0) die("setrlimit");
}

/* The fds of the request at 0..5, everything else closed. */
static void place(const int *fds) {
    int high[FDS];
    for (int i = 0; i < FDS; i++) {
        high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64);
        if (high[i] < 0) _exit(125);
    }
    for (int i = 0; i < FDS; i++) {
        if (dup2(high[i], i) < 0) _exit(125);
    }
    if (syscall(SYS_close_range, FDS, ~0U, 0) != 0) _exit(125);
    /* Only the program's own three survive its exec; the others are closed by hand below. */
    for (int i = STATUS; i < FDS; i++) fcntl(i, F_SETFD, FD_CLOEXEC);
}

static void fresh_tmpfs(const char *point, unsigned long long size) {
    struct stat st;
    if (stat(point, &st) != 0) die(point);
    char options[128];
    snprintf(options, sizeof options, "size=%llu,mode=%o", size, st.st_mode & 07777);
    if (mount("tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, options) != 0) die(point);
}

static void put(int fd, const char *data, size_t size, const char *path) {
    if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) die(path);
    while (size) {
        ssize_t n = write(fd, data, size);
        if (n < 0) die(path);
        data += n;
        size -= n;
    }
}

/* A file of the run's /proc covers, 0444 as bwrap's are, held open to be written again. */
static int make_file(const char *path, const char *data, size_t size) {
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) die(path);
    put(fd, data, size, path);
    if (fchmod(fd, 0444) != 0) die(path);
    return fd;
}

/* A fresh /proc, covered as the zygote's is. The files bound over it are made in a tmpfs on
 * WHOLE_PROC, which an empty read-only tmpfs then covers in turn. */
static void fresh_proc(const struct request *rq) {
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) die("/proc");
    if (mount("tmpfs", WHOLE_PROC, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=700") != 0) die(WHOLE_PROC);
    for (int i = 0; i < rq->n_covers; i++) {
        const struct cover *c = &rq->covers[i];
        if (c->is_dir) {
            if (mount("tmpfs", c->path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4096,mode=755") != 0)
                die(c->path);
            continue;
        }
        char made[64];
        snprintf(made, sizeof made, WHOLE_PROC "/%d", i);
        held[i] = make_file(made, c->data, c->size);
        if (mount(made, c->path, NULL, MS_BIND, NULL) != 0 ||
            mount(NULL, c->path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
            die(c->path);
    }
    if (mount("tmpfs", WHOLE_PROC, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4096,mode=755") != 0)
        die(WHOLE_PROC);
}

static void drop_capabilities(void) {
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) die("dropping a capability");
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) die("ambient capabilities");
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0) die("capset");
    if (syscall(SYS_capget, &header, data) != 0 || data[0].effective || data[0].permitted || data[1].effective ||
        data[1].permitted) {
        errno = EPERM;
        die("capabilities were not dropped");
    }
}

/* The run's own request, at its go-ahead: its covers' contents replace the parked ones, and its
 * working directory gets its size. */
static void take_run(const struct request *parked, struct request *rq) {
    read_request(rq, run_text);
    close(GO);
    if (rq->n_covers != parked->n_covers) malformed("other covers");
    for (int i = 0; i < rq->n_covers; i++) {
        const struct cover *c = &rq->covers[i];
        if (strcmp(c->path, parked->covers[i].path) != 0 || c->is_dir != parked->covers[i].is_dir)
            malformed("other covers");
        if (!c->is_dir) {
            put(held[i], c->data, c->size, c->path);
            close(held[i]);
        }
    }
    if (rq->tmpfs != parked->tmpfs) {
        char options[64];
        snprintf(options, sizeof options, "size=%llu", rq->tmpfs);
        if (mount(NULL, WORKDIR, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV, options) != 0) die("resizing " WORKDIR);
    }
}

/* The run's init: pid 1 of its pid namespace, made while parked; it waits for the run's request.
 * Returns in the program's process only. */
static void init(const struct request *parked) {
    fresh_proc(parked);
    static struct request run;
    struct request *rq = &run;
    take_run(parked, rq);
    /* Set here, not in the program's process, so that a failure is reported as the setup's. */
    limit(RLIMIT_NOFILE, rq->nofile);
    limit(RLIMIT_FSIZE, rq->fsize);
    limit(RLIMIT_NPROC, rq->nproc);
    limit(RLIMIT_DATA, rq->data);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    drop_capabilities();
    /* no_new_privs is bwrap's, inherited; the filter stacks on the zygote's. */
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter) != 0) die("seccomp");
    long long started = now_ns();
    pid_t program = fork();
    if (program < 0) die("fork");
    if (program == 0) {
        setpgid(0, 0); /* `kill 0` in the program spares its init */
        close(STATUS);
        close(SETUP);
        /* The zygote is not dumpable; the program is, as any exec'd program is, so that it may
         * open its own /proc/self/fd entries (/dev/stdout). */
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        return;
    }
    close(IN);
    close(OUT);
    close(ERR);
    close(SETUP);
    /* The sandbox's own init waits and reports from here on, so that pid 1 is what it is in every
     * sandbox (and holds nothing of the zygote's memory). */
    char pid_arg[16], started_arg[24];
    snprintf(pid_arg, sizeof pid_arg, "%d", program);
    snprintf(started_arg, sizeof started_arg, "%lld", started);
    char *const argv[] = {INIT, "--adopt", "3", pid_arg, started_arg, NULL};
    char *const envp[] = {NULL};
    fcntl(STATUS, F_SETFD, 0);
    execve(INIT, argv, envp);
    fcntl(STATUS, F_SETFD, FD_CLOEXEC); /* (it is not there: wait here instead) */
    int status;
    for (;;) {
        pid_t done = waitpid(-1, &status, 0);
        if (done == program) break;
        if (done < 0 && errno != EINTR) _exit(125);
    }
    long long elapsed = now_ns() - started;
    char line[80];
    int len = WIFSIGNALED(status) ? snprintf(line, sizeof line, "signal %d %lld\n", WTERMSIG(status), elapsed)
                                   : snprintf(line, sizeof line, "exit %d %lld\n", WEXITSTATUS(status), elapsed);
    if (write(STATUS, line, len) != len) _exit(125);
    /* As pid 1 its exit ends every process left in the namespace. */
    _exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
}

/* The run's first process, forked by the zygote. Returns in the program's process only. */
/* In the run's first process: said on the setup fd, as every failure before the program. */
static void malformed(const char *what) {
    dprintf(SETUP, "zygote: a malformed request: %s\n", what);
    _exit(125);
}

/* The covers after the first line of the request's text (n bytes in all). */
static void parse_covers(struct request *rq, char *at, char *end) {
    rq->n_covers = 0;
    while (at < end) {
        if (rq->n_covers == MAX_COVERS) malformed("too many covers");
        struct cover *c = &rq->covers[rq->n_covers++];
        char *line_end = memchr(at, '\n', end - at);
        if (!line_end || line_end - at < 3 || at[1] != ' ') malformed("a cover");
        *line_end = '\0';
        c->is_dir = at[0] == 'D';
        if (c->is_dir) {
            c->path = at + 2;
        } else if (at[0] == 'F') {
            char *path;
            c->size = strtoull(at + 2, &path, 10);
            if (*path != ' ' || c->size > (size_t)(end - line_end - 1)) malformed("a cover's size");
            c->path = path + 1;
            c->data = line_end + 1;
            line_end += c->size;
        } else {
            malformed("a cover's kind");
        }
        if (strncmp(c->path, "/proc/", 6) != 0 || strstr(c->path, "..")) malformed("a cover's path");
        at = line_end + 1;
    }
}

/* The text of a request: its limits on the first line, then its covers. */
static void parse_request(struct request *rq, char *text, size_t n) {
    text[n] = '\0';
    char *first = memchr(text, '\n', n);
    if (!first || sscanf(text, "%llu %llu %llu %llu %llu %llu", &rq->nofile, &rq->fsize, &rq->nproc, &rq->data,
                         &rq->tmpfs, &rq->shm) != 6)
        malformed("its limits");
    parse_covers(rq, first + 1, text + n);
}

/* Exactly n bytes from the go-ahead pipe; at EOF (the server gave up on the run) exit. */
static void read_go(char *into, size_t n) {
    while (n) {
        ssize_t got = read(GO, into, n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) _exit(125);
        into += got;
        n -= got;
    }
}

/* A request on the go-ahead pipe: an 8-byte big-endian length, then the text (parse_request). */
static void read_request(struct request *rq, char *text) {
    unsigned char head[8];
    read_go((char *)head, 8);
    unsigned long long n = 0;
    for (int i = 0; i < 8; i++) n = n << 8 | head[i];
    if (n > REQUEST_BYTES) malformed("too long");
    read_go(text, n);
    parse_request(rq, text, n);
}

/* The run's first process. The server sends two requests on the go-ahead pipe: the first once it
 * has moved this process into the run's cgroup, with the pool's limits, and everything up to the
 * program is made then, while it is parked; the second when the run comes (take_run). */
static void first(const int *fds, struct request *rq) {
    place(fds);
    setsid();
    read_request(rq, parked_text);
    if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWCGROUP) != 0) die("unshare");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("making mounts private");
    fresh_tmpfs(WORKDIR, rq->tmpfs);
    fresh_tmpfs(SHM, rq->shm);
    if (chdir(WORKDIR) != 0) die(WORKDIR);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        init(rq);
        return;
    }
    for (int fd = 0; fd < FDS; fd++) close(fd); /* (the go-ahead's next request is the init's) */
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    _exit(0);
}

static int send_pidfd(int control, int pidfd) {
    char byte = 'f';
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pidfd, sizeof(int));
    return sendmsg(control, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* A fork request: exactly FDS fds (and a byte). 0: the server is gone. */
static int receive(int control, int *fds) {
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n;
    do n = recvmsg(control, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return 0;
    int count = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (int i = 0; i < got; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (count < FDS)
                fds[count++] = fd;
            else
                close(fd);
        }
    }
    if (count != FDS || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        fprintf(stderr, "zygote: a malformed request: not %d fds\n", FDS);
        _exit(125);
    }
    return 1;
}

static PyObject *serve(PyObject *self, PyObject *args) {
    (void)self;
    int control;
    const char *program;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "iy#", &control, &program, &size)) return NULL;
    if (size <= 0 || size % sizeof(struct sock_filter) != 0 || size / sizeof(struct sock_filter) > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "not a seccomp program");
        return NULL;
    }
    filter.len = size / sizeof(struct sock_filter);
    filter.filter = malloc(size);
    if (!filter.filter) return PyErr_NoMemory();
    memcpy(filter.filter, program, size);
    /* Orphans of a run come to the zygote, which waits for them all before the next run. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    for (;;) {
        static struct request rq;
        int fds[FDS];
        if (!receive(control, fds)) _exit(0);
        /* As os.fork() does: the interpreter's locks are taken across the fork, and reset in
         * the child (the program's process) by PyOS_AfterFork_Child(). */
        PyOS_BeforeFork();
        pid_t pid = fork();
        if (pid < 0) {
            perror("zygote: fork");
            _exit(125);
        }
        if (pid == 0) {
            first(fds, &rq);
            PyOS_AfterFork_Child();
            Py_RETURN_NONE;
        }
        PyOS_AfterFork_Parent();
        for (int i = 0; i < FDS; i++) close(fds[i]);
        int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0 || send_pidfd(control, pidfd) != 0) {
            perror("zygote: pidfd");
            _exit(125);
        }
        close(pidfd);
        while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
        }
    }
}

static PyMethodDef methods[] = {
    {"serve", serve, METH_VARARGS, "Serve runs by forking; returns in each run's program only."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_zygote", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__zygote(void) { return PyModule_Create(&module); }
