/* podbus-shim: the per-container shim, the C twin of shim.py (same
 * arguments, same files, same protocol), compiled once per node by the
 * oci runtime when a C compiler is present: a Python interpreter per
 * container costs ~50 ms of CPU at start, this costs ~1 ms.
 *
 *   podbus-shim RUNC RUNC_ROOT ID BUNDLE ATTEMPT_DIR OOM_FILE|- LOG_FILE
 *
 * 1. becomes a child subreaper; `runc run --detach` with the container's
 *    stdout and stderr on pipes to the shim;
 * 2. writes `started <pid> <time>` (or `failed <message>`) on stdout, closes it;
 * 3. writes the container output to LOG_FILE in the CRI format (on disk,
 *    while ATTEMPT_DIR may be a tmpfs);
 * 4. on the init's exit: reads the oom_kill count, writes exit.json,
 *    `runc delete`s the container.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE (16 * 1024)
#define BUF_CAP (MAX_LINE + 65536)

static const char *runc_bin, *runc_root, *cid, *bundle, *adir, *oom_path, *log_path;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void stamp(char *out, size_t len) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%09ldZ", ts.tv_nsec);
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}

struct stream {
    int fd;
    const char *name;
    char buf[BUF_CAP];
    size_t len;
};

static int log_fd = -1;

static void emit(const char *name, char tag, const char *text, size_t len) {
    char head[64];
    char ts[48];
    stamp(ts, sizeof ts);
    int h = snprintf(head, sizeof head, "%s %s %c ", ts, name, tag);
    write_all(log_fd, head, (size_t)h);
    write_all(log_fd, text, len);
    write_all(log_fd, "\n", 1);
}

static void flush_lines(struct stream *s, int final) {
    size_t start = 0;
    for (;;) {
        char *nl = memchr(s->buf + start, '\n', s->len - start);
        if (!nl) break;
        size_t end = (size_t)(nl - s->buf);
        while (end - start > MAX_LINE) {
            emit(s->name, 'P', s->buf + start, MAX_LINE);
            start += MAX_LINE;
        }
        emit(s->name, 'F', s->buf + start, end - start);
        start = end + 1;
    }
    while (s->len - start > MAX_LINE || (final && s->len > start)) {
        size_t n = s->len - start > MAX_LINE ? MAX_LINE : s->len - start;
        emit(s->name, 'P', s->buf + start, n);
        start += n;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
}

/* Run runc with the given stdout/stderr (-1: capture into msg). */
static int run_runc(char *const argv[], int out_fd, int err_fd, char *msg, size_t msglen) {
    int cap[2] = {-1, -1};
    if (out_fd < 0 || err_fd < 0) {
        if (pipe2(cap, O_CLOEXEC) < 0) return -1;
    }
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(out_fd >= 0 ? out_fd : cap[1], 1);
        dup2(err_fd >= 0 ? err_fd : cap[1], 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    size_t got = 0;
    if (cap[1] >= 0) {
        close(cap[1]);
        for (;;) {
            ssize_t r = read(cap[0], msg + got, msglen - 1 - got);
            if (r <= 0) {
                if (r < 0 && errno == EINTR) continue;
                break;
            }
            got += (size_t)r;
            if (got >= msglen - 1) break;
        }
        close(cap[0]);
    }
    if (msg) msg[got] = 0;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void one_line(char *s) {
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

static void runc_delete(void) {
    char msg[256];
    char *argv[] = {(char *)runc_bin, "--root", (char *)runc_root, "delete", "--force", (char *)cid, NULL};
    run_runc(argv, -1, -1, msg, sizeof msg);
}

static long oom_kills(void) {
    if (!oom_path || strcmp(oom_path, "-") == 0) return 0;
    FILE *f = fopen(oom_path, "r");
    if (!f) return 0;
    char key[64];
    long value, found = 0;
    while (fscanf(f, "%63s %ld", key, &value) == 2) {
        if (strcmp(key, "oom_kill") == 0) found = value;
    }
    fclose(f);
    return found;
}

static void write_json(const char *name, const char *text) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", adir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    write_all(fd, text, strlen(text));
    close(fd);
    rename(tmp, path);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: podbus-shim RUNC RUNC_ROOT ID BUNDLE ATTEMPT_DIR OOM_FILE LOG_FILE\n");
        return 2;
    }
    runc_bin = argv[1];
    runc_root = argv[2];
    cid = argv[3];
    bundle = argv[4];
    adir = argv[5];
    oom_path = argv[6];
    log_path = argv[7];
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    int out_p[2], err_p[2];
    if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) {
        printf("failed cannot create pipes: %s\n", strerror(errno));
        return 1;
    }
    char pid_file[4096];
    snprintf(pid_file, sizeof pid_file, "%s/pid", adir);
    /* `run --detach` is create + start in one runc process */
    char *create[] = {(char *)runc_bin, "--root", (char *)runc_root, "run", "--detach", "--bundle",
                      (char *)bundle, "--pid-file", pid_file, (char *)cid, NULL};
    int rc = run_runc(create, out_p[1], err_p[1], NULL, 0);
    close(out_p[1]);
    close(err_p[1]);
    if (rc != 0) {
        char msg[4096];
        fcntl(err_p[0], F_SETFL, O_NONBLOCK);
        ssize_t r = read(err_p[0], msg, sizeof msg - 1);
        msg[r > 0 ? r : 0] = 0;
        one_line(msg);
        printf("failed %s\n", msg[0] ? msg : "runc create failed");
        fflush(stdout);
        runc_delete();
        return 1;
    }
    FILE *pf = fopen(pid_file, "r");
    int pid = 0;
    if (!pf || fscanf(pf, "%d", &pid) != 1) {
        printf("failed runc wrote no pid file\n");
        fflush(stdout);
        runc_delete();
        return 1;
    }
    fclose(pf);
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

    double started_at = now();
    char json[512];
    snprintf(json, sizeof json, "{\"pid\": %d, \"started_at\": %.6f, \"shim_pid\": %d}", pid,
             started_at, (int)getpid());
    write_json("started.json", json);
    printf("started %d %.6f\n", pid, started_at);
    fflush(stdout);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    close(devnull);

    static struct stream streams[2];
    streams[0].fd = out_p[0];
    streams[0].name = "stdout";
    streams[1].fd = err_p[0];
    streams[1].name = "stderr";
    int open_fds = 2, status = 0, exited = 0;
    double drain_until = 0;
    while (open_fds > 0) {
        struct pollfd pfd[2];
        int n = 0, idx[2];
        for (int i = 0; i < 2; i++) {
            if (streams[i].fd >= 0) {
                pfd[n].fd = streams[i].fd;
                pfd[n].events = POLLIN;
                idx[n++] = i;
            }
        }
        int timeout = 200;
        if (exited) {
            timeout = (int)((drain_until - now()) * 1000);
            if (timeout <= 0) break;
        }
        int ready = poll(pfd, (nfds_t)n, timeout);
        for (int k = 0; ready > 0 && k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            struct stream *s = &streams[idx[k]];
            ssize_t r = read(s->fd, s->buf + s->len, BUF_CAP - s->len);
            if (r <= 0) {
                if (r < 0 && errno == EINTR) continue;
                close(s->fd);
                s->fd = -1;
                open_fds--;
                continue;
            }
            s->len += (size_t)r;
            flush_lines(s, 0);
        }
        while (!exited) {
            int st;
            pid_t got = waitpid(-1, &st, WNOHANG);
            if (got <= 0) break;
            if (got == pid) {
                status = st;
                exited = 1;
                drain_until = now() + 0.5;
            }
        }
    }
    while (!exited) {
        int st;
        pid_t got = waitpid(-1, &st, 0);
        if (got < 0 && errno != EINTR) break;
        if (got == pid) {
            status = st;
            exited = 1;
        }
    }
    double finished_at = now();
    flush_lines(&streams[0], 1);
    flush_lines(&streams[1], 1);
    if (log_fd >= 0) close(log_fd);
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    int code = sig ? 128 + sig : WEXITSTATUS(status);
    snprintf(json, sizeof json,
             "{\"exit_code\": %d, \"signal\": %d, \"started_at\": %.6f, \"finished_at\": %.6f, "
             "\"oom_killed\": %s}",
             code, sig, started_at, finished_at, oom_kills() > 0 ? "true" : "false");
    write_json("exit.json", json);
    runc_delete();
    return 0;
}
