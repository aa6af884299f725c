"""Start and stop worker.py as a real separate process, as the Procfile would."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess:
    def __init__(self, *args, **env):
        self.args = [str(a) for a in args]  # e.g. "dispatch" or "cpu"
        self.env = {**os.environ, **{k: str(v) for k, v in env.items()}}
        self.proc = None

    def start(self):
        self.log = open(ROOT / "tests" / "artifacts" / f"worker-{time.time_ns()}.log", "wb") \
            if (ROOT / "tests" / "artifacts").is_dir() else subprocess.DEVNULL
        # Its own process group: the worker forks RQ's scheduler, and a lost machine loses both.
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "worker.py"), *self.args], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL to the worker and its scheduler at once, as when a dyno or machine is lost."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()  # whatever is left of its group (the scheduler), never orphaned

    def __enter__(self):
        return self.start()

    def __exit__(self, *_exc):
        self.stop()


def wait_for(predicate, timeout=30, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
