"""Running `svirt-pool agent` from the bench and reliability scripts: started with a real
sd_notify socket, so "ready" means the agent's first scan is done."""
import os
import shutil
import socket
import subprocess
import tempfile
import time


class Agent:
    """An agent process; `wait_ready()` blocks until it sends READY=1."""

    def __init__(self, binary, config, log="error"):
        self.dir = tempfile.mkdtemp(prefix="svirt-agent-notify-")
        path = os.path.join(self.dir, "notify.sock")
        self.ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.ns.bind(path)
        self.ns.settimeout(600)
        env = dict(os.environ, NOTIFY_SOCKET=path, RUST_LOG=log)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([binary, "--config", config, "agent"], env=env,
                                     stderr=subprocess.DEVNULL)
        self.ready_after = None

    def wait_ready(self):
        while b"READY=1" not in self.ns.recv(4096):
            pass
        self.ready_after = time.perf_counter() - self.started
        return self

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def peak_rss_kib(self):
        """The most resident memory the agent has had (VmHWM): its first scan's peak."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def kill(self):
        """SIGKILL: a crash."""
        self.proc.kill()
        self._reap()

    def stop(self):
        """SIGTERM: a clean stop."""
        self.proc.terminate()
        self._reap()

    def _reap(self):
        self.proc.wait()
        self.ns.close()
        shutil.rmtree(self.dir, ignore_errors=True)
