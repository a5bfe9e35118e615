/*
 * pool-exec: a pre-warmed sandbox's first program for languages whose interpreter starts
 * in a millisecond (bash): waits for one run on stdin, writes its files, then execs
 *
 *   pool-exec PROGRAM [ARGS...]      ->   PROGRAM ARGS... RUN-ARGS...
 *   pool-exec [--null-stdin]         ->   RUN-ARGS...  (the hand-over names the program too)
 *
 * A compiled language's waiting sandbox runs it twice: as its compile stage, where the hand-over
 * brings the files and the compiler's command line, and --null-stdin then gives the compiler
 * /dev/null, so that what follows on stdin stays for the run; and as its run stage, which
 * reads a second hand-over (the program's command line) and leaves the rest to the program.
 *
 * It reads exactly one hand-over (sandbox/handover.py): an 8-byte big-endian
 * length, then that many bytes holding the files and the arguments, and leaves the rest
 * of stdin to the program. EOF before a run means the server is gone: exit quietly.
 * Written in C so that it holds about 50 KiB while it waits and starts at once;
 * it changes no signal disposition, so the program starts exactly as it would cold.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void fail(const char *what) {
    fprintf(stderr, "pool-exec: %s: %s\n", what, strerror(errno));
    _exit(125);
}

static void read_exact(unsigned char *buf, uint64_t n) {
    while (n) {
        ssize_t got = read(0, buf, n > (1 << 30) ? (1 << 30) : n);
        if (got == 0) _exit(0);
        if (got < 0) {
            if (errno == EINTR) continue;
            fail("read");
        }
        buf += got;
        n -= (uint64_t)got;
    }
}

struct cursor {
    unsigned char *at, *end;
};

static uint64_t number(struct cursor *c, int width) {
    if (c->end - c->at < width) {
        errno = EPROTO;
        fail("short hand-over");
    }
    uint64_t n = 0;
    for (int i = 0; i < width; i++) n = (n << 8) | *c->at++;
    return n;
}

/* A length-prefixed run of bytes: where it starts; its length in *size. */
static unsigned char *chunk(struct cursor *c, int width, uint64_t *size) {
    *size = number(c, width);
    if ((uint64_t)(c->end - c->at) < *size) {
        errno = EPROTO;
        fail("short hand-over");
    }
    unsigned char *start = c->at;
    c->at += *size;
    return start;
}

static char *copy(const unsigned char *s, uint64_t n) {
    char *out = malloc(n + 1);
    if (!out) fail("malloc");
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

static void make_parents(char *path) {
    for (char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) fail(path);
        *p = '/';
    }
}

static void write_file(const char *name, const unsigned char *data, uint64_t n) {
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) fail(name);
    while (n) {
        ssize_t put = write(fd, data, n > (1 << 30) ? (1 << 30) : n);
        if (put < 0) {
            if (errno == EINTR) continue;
            fail(name);
        }
        data += put;
        n -= (uint64_t)put;
    }
    if (close(fd) != 0) fail(name);
}

int main(int argc, char **argv) {
    int null_stdin = argc > 1 && strcmp(argv[1], "--null-stdin") == 0;
    if (null_stdin) {
        argv++;
        argc--;
    }
    unsigned char head[8];
    read_exact(head, 8);
    struct cursor c = {head, head + 8};
    uint64_t size = number(&c, 8);
    unsigned char *body = malloc(size ? size : 1);
    if (!body) fail("malloc");
    read_exact(body, size);
    c.at = body;
    c.end = body + size;

    uint64_t files = number(&c, 4), n;
    for (uint64_t i = 0; i < files; i++) {
        const unsigned char *raw = chunk(&c, 4, &n);
        char *name = copy(raw, n);
        const unsigned char *content = chunk(&c, 8, &n);
        make_parents(name);
        write_file(name, content, n);
        free(name);
    }
    uint64_t extra = number(&c, 4);
    if (extra > 1 << 20) {
        errno = EPROTO;
        fail("too many arguments");
    }
    char **args = calloc((size_t)(argc - 1) + extra + 1, sizeof *args);
    if (!args) fail("calloc");
    for (int i = 1; i < argc; i++) args[i - 1] = argv[i];
    for (uint64_t i = 0; i < extra; i++) {
        const unsigned char *arg = chunk(&c, 4, &n);
        args[argc - 1 + i] = copy(arg, n);
    }
    free(body);
    if (!args[0]) {
        errno = EPROTO;
        fail("no program to run");
    }
    if (null_stdin) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0) fail("/dev/null");
        close(null);
    }
    execv(args[0], args);
    fprintf(stderr, "pool-exec: cannot run %s: %s\n", args[0], strerror(errno));
    return 127;
}
