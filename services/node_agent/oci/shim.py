"""The per-container shim (what containerd-shim-runc is to containerd),
run as its own session so it outlives an agent restart:

    python3 -I -S shim.py RUNC RUNC_ROOT ID BUNDLE ATTEMPT_DIR OOM_FILE|- LOG_FILE

1. becomes a child subreaper, then `runc run --detach` (create and start in
   one runc process; the container's stdout and stderr are pipes to the shim);
2. tells the agent `started <pid> <time>` (or `failed <message>`) on its
   stdout, then closes it;
3. writes the container's output to LOG_FILE in the CRI format
   (`<RFC3339Nano> stdout|stderr F|P <text>`);
4. when the container's init exits: reads the memory cgroup's oom_kill
   count (OOM_FILE: memory.events on cgroup v2, memory.oom_control on v1),
   writes ATTEMPT_DIR/exit.json, and `runc delete`s the container.

Standalone on purpose (stdlib only, no package imports): it starts in a
few tens of milliseconds and nothing of the agent's state lives in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
MAX_LINE = 16 * 1024
DRAIN_AFTER_EXIT_S = 0.5


def rfc3339nano(t: float) -> str:
    secs = int(t)
    nanos = int((t - secs) * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


class LogWriter:
    """CRI log lines; a line longer than MAX_LINE is split into partial (P)
    lines; a trailing unterminated piece is flushed as P at the end."""

    def __init__(self, path: str) -> None:
        self.f = open(path, "ab", buffering=0)  # noqa: SIM115
        self.pending = {"stdout": b"", "stderr": b""}

    def feed(self, stream: str, data: bytes) -> None:
        buf = self.pending[stream] + data
        out = []
        now = rfc3339nano(time.time()).encode()
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl], buf[nl + 1 :]
            while len(line) > MAX_LINE:
                out.append(b"%s %s P %s\n" % (now, stream.encode(), line[:MAX_LINE]))
                line = line[MAX_LINE:]
            out.append(b"%s %s F %s\n" % (now, stream.encode(), line))
        while len(buf) > MAX_LINE:
            out.append(b"%s %s P %s\n" % (now, stream.encode(), buf[:MAX_LINE]))
            buf = buf[MAX_LINE:]
        self.pending[stream] = buf
        if out:
            self.f.write(b"".join(out))

    def close(self) -> None:
        now = rfc3339nano(time.time()).encode()
        for stream, buf in self.pending.items():
            if buf:
                self.f.write(b"%s %s P %s\n" % (now, stream.encode(), buf))
        self.f.close()


def oom_kills(path: str) -> int:
    if path in ("", "-"):
        return 0
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def main(argv: list[str]) -> int:
    runc, root, cid, bundle, attempt_dir, oom_file, log_file = argv
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    report = sys.stdout
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    pid_file = os.path.join(attempt_dir, "pid")
    created = subprocess.run(
        [runc, "--root", root, "run", "--detach", "--bundle", bundle, "--pid-file", pid_file, cid],
        stdin=devnull,
        stdout=out_w,
        stderr=err_w,
        check=False,
    )
    os.close(out_w)
    os.close(err_w)
    os.close(devnull)
    if created.returncode != 0:
        os.set_blocking(err_r, False)
        message = b""
        with contextlib.suppress(OSError):
            message = os.read(err_r, 65536)
        report.write("failed " + message.decode(errors="replace").strip().replace("\n", " ") + "\n")
        report.flush()
        subprocess.run([runc, "--root", root, "delete", "--force", cid], capture_output=True)
        return 1
    with open(pid_file) as f:
        pid = int(f.read().strip())
    log = LogWriter(log_file)
    started_at = time.time()
    with open(os.path.join(attempt_dir, "started.json.tmp"), "w") as f:
        json.dump({"pid": pid, "started_at": started_at, "shim_pid": os.getpid()}, f)
    os.rename(
        os.path.join(attempt_dir, "started.json.tmp"), os.path.join(attempt_dir, "started.json")
    )
    report.write(f"started {pid} {started_at!r}\n")
    report.flush()
    with contextlib.suppress(OSError):
        report.close()
        os.close(1)
    streams = {out_r: "stdout", err_r: "stderr"}
    status: int | None = None
    drain_until = 0.0
    while streams:
        timeout = 0.2 if status is None else max(drain_until - time.time(), 0)
        if status is not None and timeout == 0:
            break
        ready, _, _ = select.select(list(streams), [], [], timeout)
        for fd in ready:
            data = os.read(fd, 65536)
            if not data:
                os.close(fd)
                del streams[fd]
                continue
            log.feed(streams[fd], data)
        while status is None:
            try:
                reaped, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if reaped == 0:
                break
            if reaped == pid:
                status = st
                drain_until = time.time() + DRAIN_AFTER_EXIT_S
    while status is None:  # the pipes closed before the exit was seen
        reaped, st = os.waitpid(-1, 0)
        if reaped == pid:
            status = st
    finished_at = time.time()
    log.close()
    code = os.waitstatus_to_exitcode(status)
    sig = -code if code < 0 else 0
    exit_code = 128 + sig if sig else code
    result = {
        "exit_code": exit_code,
        "signal": sig,
        "started_at": started_at,
        "finished_at": finished_at,
        "oom_killed": oom_kills(oom_file) > 0,
    }
    tmp = os.path.join(attempt_dir, "exit.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.rename(tmp, os.path.join(attempt_dir, "exit.json"))
    subprocess.run([runc, "--root", root, "delete", "--force", cid], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
