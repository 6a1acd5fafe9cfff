"""The command line as a user runs it, without paying the start-up each time.

`run_module("mwvae.train", *args)` behaves like `subprocess.run([python, "-m",
"mwvae.train", *args], capture_output=True, text=True)`: a process of its
own, its own working folder, environment, stdout, stderr and exit status
(negative for a signal, as subprocess reports it). It is forked from a
*zygote*, a process started once per test process that has already imported
torch, Lightning, Hydra and mwvae: importing them costs seconds, and the
suite runs the CLI dozens of times. The zygote runs no torch operation before
forking, so no thread pool is duplicated half-alive. Tests about start-up
itself (what a config error imports, the network guard's sitecustomize, DDP's
relaunch of the interpreter) keep a real interpreter.

Run as `python -m tests.cli`, this module is the zygote: one JSON request per
line on stdin, answered by the child's pid and then its exit status.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_module(
    module: str, *args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in `cwd` with this process's environment
    and `env`'s variables, forked from the zygote; raises
    subprocess.TimeoutExpired after `timeout` seconds, the child killed."""
    command = [sys.executable, "-m", module, *args]
    with tempfile.TemporaryDirectory() as folder:
        outputs = {name: str(Path(folder) / name) for name in ("stdout", "stderr")}
        request = {
            "module": module,
            "args": list(args),
            "cwd": str(cwd),
            "env": {**os.environ, **(env or {})},
            **outputs,
        }
        try:
            returncode = zygote().run(request, timeout)
        except subprocess.TimeoutExpired as expired:
            expired.cmd = command
            raise
        stdout, stderr = (Path(outputs[name]).read_text() for name in ("stdout", "stderr"))
    return subprocess.CompletedProcess(command, returncode, stdout, stderr)


class Zygote:
    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.cli"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        self.pending = b""  # answers read but not yet consumed

    def run(self, request: dict, timeout: float) -> int:
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        pid = self.answer()["pid"]
        try:
            return self.answer(timeout)["returncode"]
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            self.answer()
            raise

    def answer(self, timeout: float | None = None) -> dict:
        """The zygote's next answer line; TimeoutExpired if none within `timeout`."""
        fd = self.process.stdout.fileno()
        while b"\n" not in self.pending:
            if not select.select([fd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired("mwvae CLI", timeout)
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"the CLI zygote ended (exit status {self.process.wait()})")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


_zygote: Zygote | None = None


def zygote() -> Zygote:
    global _zygote
    if _zygote is None or _zygote.process.poll() is not None:
        _zygote = Zygote()
        atexit.register(_zygote.close)
    return _zygote


def serve() -> None:
    """The zygote's loop. The child leaves it by raising SystemExit (or any
    uncaught exception) out of the module it runs, so the interpreter ends
    as after `python -m`: traceback, atexit handlers, flushed streams."""
    # The preload: torch, Lightning, Hydra and the evaluation come with it.
    from mwvae.training import freeze_long_lived

    # As the CLI does once it has imported them, and before a config error's
    # run would (it fails before that point): it took twice as long without.
    freeze_long_lived()
    channel = os.fdopen(os.dup(1), "w")  # answers; fd 1 itself is the children's
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            channel.close()
            become(request)
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            raise SystemExit(0)
        channel.write(json.dumps({"pid": pid}) + "\n")
        channel.flush()
        _, status = os.waitpid(pid, 0)
        channel.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        channel.flush()


def become(request: dict) -> None:
    """Give the forked child the process state `python -m` would have had."""
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # sys.path as the interpreter builds it: the working folder, then PYTHONPATH.
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:1] = [request["cwd"], *extra]
    sys.argv = [request["module"], *request["args"]]


if __name__ == "__main__":
    serve()
