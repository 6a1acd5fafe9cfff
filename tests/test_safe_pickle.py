import os
import pickle

import numpy as np
import pytest

from mwvae.safe_pickle import UnsafePickleError, restricted_loads


class RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_a_pickle_that_calls_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(RunsAShellCommand(marker), protocol=2)
    with pytest.raises(UnsafePickleError, match="system"):
        restricted_loads(payload)
    assert not marker.exists()


def test_refuses_globals_outside_the_allowed_set():
    payload = pickle.dumps(np.arange(3), protocol=2)  # numpy>=2 names numpy._core
    with pytest.raises(UnsafePickleError):
        restricted_loads(payload, allowed=frozenset())
