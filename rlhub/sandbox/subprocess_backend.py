"""The subprocess backend: workers are plain host processes, with rlimits and cleanup but no isolation."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tempfile

from rlhub.sandbox.channel import Channel, PipeChannel
from rlhub.sandbox.config import BASE_ENV, PYTHON_FLAGS, ZYGOTE_PATH, zygote_config


class SubprocessBackend:
    """Workers are plain host processes: rlimits, a private directory and cleanup, no isolation.

    Programs can read and write whatever the host user can, use the network, and on a root host
    are not held by RLIMIT_NPROC. Processes a program detaches from its session are swept when the
    program ends, but not if its worker is killed. For development machines without bubblewrap;
    ``make_backend`` warns, once per process, that it is not isolated.
    """

    name = "subprocess"
    isolated = False

    def start(self) -> Channel:
        scratch = tempfile.mkdtemp(prefix="rlhub-sandbox-")
        config = zygote_config(
            uid=None,
            max_processes=None,
            workdir=os.path.join(scratch, "work"),
            scratch=[scratch],
            private_ipc=False,
            site_packages=site.getsitepackages(),
        )
        argv = [sys.executable, *PYTHON_FLAGS, str(ZYGOTE_PATH), json.dumps(config)]
        # rm, not shutil.rmtree: a program can nest directories deeper than Python's recursion limit.
        remove = ["rm", "-rf", "--one-file-system", scratch]
        return PipeChannel(
            argv, env=dict(BASE_ENV), wrapped=False, on_close=lambda: subprocess.run(remove, check=False)
        )

    def close(self) -> None:
        pass
