"""Training never touches the network: a CLI run (W&B logger in its default
offline mode, evaluation included) succeeds with every socket connection
refused except Unix-domain ones (W&B's client talks to its local service
process over a Unix socket). Where unprivileged user namespaces exist, the
run also goes into a namespace without any network, which covers processes
that are not Python (wandb-core is a Go binary)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.subsets import SUBSET

ROOT = Path(__file__).resolve().parents[1]

# Loaded by every Python process of the run through PYTHONPATH.
SITECUSTOMIZE = """
import os
import socket

_LOG = os.environ["NO_NETWORK_LOG"]


def _record(line):
    with open(_LOG, "a") as log:
        log.write(f"{os.getpid()} {line}\\n")


def _guard(method):
    def guarded(self, address):
        if self.family == socket.AF_UNIX:
            _record(f"allowed unix {address!r}")
            return method(self, address)
        _record(f"refused {self.family!r} {address!r}")
        raise OSError(f"network access is forbidden in this test: {address!r}")

    return guarded


def _create_connection(address, *args, **kwargs):
    _record(f"refused create_connection {address!r}")
    raise OSError(f"network access is forbidden in this test: {address!r}")


socket.socket.connect = _guard(socket.socket.connect)
socket.socket.connect_ex = _guard(socket.socket.connect_ex)
socket.create_connection = _create_connection
_record("loaded")
"""


def network_namespace() -> list[str]:
    """`unshare -rn` (a user and network namespace: no interface but a downed
    loopback) where the kernel allows it, else nothing."""
    if shutil.which("unshare") is None:
        return []
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    return ["unshare", "-rn"] if probe.returncode == 0 else []


def test_a_training_run_with_evaluation_needs_no_network(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "connections.log"
    env = {**os.environ, "NO_NETWORK_LOG": str(log)}
    env.pop("WANDB_MODE", None)  # the logger's own default: offline
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path / "site"), *filter(None, [env.get("PYTHONPATH")])]
    )
    run_dir = tmp_path / "run"
    command = [
        *network_namespace(),
        sys.executable,
        "-m",
        "mwvae.train",
        "logger=wandb",
        "evaluate=true",
        SUBSET,
        "trainer.max_epochs=1",
        "evaluation.likelihood.k=10",
        "evaluation.likelihood.num_samples=10",
        "evaluation.joint_samples=100",
        "callbacks.progress_bar.refresh_rate=0",
        f"paths.root_dir={ROOT}",
        f"hydra.run.dir={run_dir}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = log.read_text().splitlines()
    assert any(line.endswith(" loaded") for line in lines)  # the guard was in place
    assert not [line for line in lines if " refused " in line], lines
    assert (run_dir / "metrics.json").exists()
    assert list((run_dir / "wandb").glob("offline-run-*"))  # W&B ran, offline
