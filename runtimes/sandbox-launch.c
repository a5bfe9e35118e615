/*
 * sandbox-launch: the server's first step into a sandbox, run as root, exec'd in place.
 *
 *   sandbox-launch UID [CGROUP_PROCS_FILE...] -- PROGRAM [ARGS...]
 *
 * It joins the run's cgroups (writing its pid into each cgroup.procs file, so that
 * everything it becomes and starts is inside them from the first instruction), then
 * drops to UID for good: no supplementary groups, gid = uid, an empty capability
 * bounding set, no inheritable or ambient capabilities, no_new_privs. Then it execs
 * PROGRAM (bwrap) with the environment it was given.
 *
 * It replaces `sh` (to join the cgroups) and `setpriv` (to drop privileges): two
 * program starts of a millisecond or more each, on every sandbox. Any failure exits
 * 125 with a message on stderr, before the program runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "sandbox-launch: %s%s%s: %s\n", what, detail ? " " : "", detail ? detail : "", strerror(errno));
    _exit(125);
}

static void join(const char *procs_file, const char *pid) {
    int fd = open(procs_file, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open", procs_file);
    ssize_t len = (ssize_t)strlen(pid);
    if (write(fd, pid, len) != len) fail("cannot join", procs_file);
    if (close(fd) != 0) fail("cannot join", procs_file);
}

int main(int argc, char **argv) {
    int sep = 2;
    while (sep < argc && strcmp(argv[sep], "--") != 0) sep++;
    if (argc < 2 || sep + 1 >= argc) {
        fprintf(stderr, "usage: sandbox-launch UID [CGROUP_PROCS_FILE...] -- PROGRAM [ARGS...]\n");
        return 125;
    }
    char *end;
    errno = 0;
    unsigned long uid = strtoul(argv[1], &end, 10);
    if (errno || *end || uid == 0 || uid > 0x7fffffff) {
        errno = EINVAL;
        fail("bad uid", argv[1]);
    }

    char pid[32];
    snprintf(pid, sizeof pid, "%d\n", getpid());
    for (int i = 2; i < sep; i++) join(argv[i], pid);

    /* Still root: empty the bounding set and the ambient set while that is allowed. */
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) fail("cannot drop capability", NULL);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        fail("cannot clear ambient capabilities", NULL);
    if (setgroups(0, NULL) != 0) fail("cannot clear groups", NULL);
    if (setresgid(uid, uid, uid) != 0) fail("cannot set gid", argv[1]);
    /* From uid 0 to another uid for real, effective and saved: the kernel clears the
     * permitted and effective sets. The inheritable set is cleared below. */
    if (setresuid(uid, uid, uid) != 0) fail("cannot set uid", argv[1]);
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0) fail("cannot clear capabilities", NULL);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("cannot set no_new_privs", NULL);
    /* Nothing of root is left: make sure of it rather than assume it. */
    if (setuid(0) == 0 || geteuid() != uid || getegid() != uid) {
        errno = EPERM;
        fail("privileges were not dropped", NULL);
    }

    execv(argv[sep + 1], &argv[sep + 1]);
    fail("cannot run", argv[sep + 1]);
    return 125;
}
