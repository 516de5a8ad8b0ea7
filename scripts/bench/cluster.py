#!/usr/bin/env python3
"""Cluster mode: DefineGuest and shared-pool attach+detach with 3 agents on a real
3-member etcd (loopback, data on this machine's disk), beside one agent alone (its
SQLite state) on the same machine, and etcd's own `etcdctl check perf`.

- DefineGuest: --clients processes per agent define new guests for --secs seconds;
  the rate is the total over all agents (goal >= 500/s with 3 agents).
- Attach+detach: each agent serves --attach-clients clients, each with its own guest and
  disk of the shared pool, attach(rw) + detach pairs; the rate per agent (goal >= 300
  pairs/s) and the 99th percentile of an attach's latency (goal <= 25 ms). The agent
  commits the calls that wait together as one etcd transaction.
Needs root, etcd and etcdctl (etcd-server, etcd-client) and a release build.

    scripts/bench/cluster.py [--secs 5] [--clients 4] [--attach-clients 1,8] [--no-check-perf]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, os.path.join(HERE, ".."))
import svirtpool  # noqa: E402
from agentproc import Agent  # noqa: E402

sys.path.insert(0, HERE)
from pools import IMAGES  # noqa: E402
from attach import run_processes as run  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """A 3-member etcd cluster on loopback ports, data under `dir`."""

    def __init__(self, dir, n=3):
        ports = [(free_port(), free_port()) for _ in range(n)]
        peers = ",".join("m%d=http://127.0.0.1:%d" % (i, p) for i, (_, p) in enumerate(ports))
        self.endpoints = ["http://127.0.0.1:%d" % c for c, _ in ports]
        self.procs = []
        for i, (client, peer) in enumerate(ports):
            url, purl = "http://127.0.0.1:%d" % client, "http://127.0.0.1:%d" % peer
            self.procs.append(subprocess.Popen(
                ["etcd", "--name", "m%d" % i, "--data-dir", os.path.join(dir, "m%d" % i),
                 "--listen-client-urls", url, "--advertise-client-urls", url,
                 "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                 "--initial-cluster", peers, "--initial-cluster-token", "svirt-pool-bench",
                 "--initial-cluster-state", "new", "--log-level", "error"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 30
        while subprocess.run(self.ctl(["put", "/ready", "1"]), capture_output=True).returncode:
            if time.time() > deadline:
                sys.exit("cluster.py: etcd did not answer within 30 s")
            time.sleep(0.1)

    def ctl(self, args):
        return ["etcdctl", "--endpoints=" + ",".join(self.endpoints), "--command-timeout=5s"] + args

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def write_config(state, shared, host=None, etcd=None):
    path = os.path.join(state, "bench.toml")
    with open(path, "w") as f:
        f.write('state_dir = "%s"\n[api]\nsocket = "%s/api.sock"\nidle_timeout_secs = 600\n'
                'max_guests_per_user = 100000\n\n'
                '[[pool]]\nname = "shared"\ntype = "dir"\npath = "%s"\n' % (state, state, shared))
        if etcd:
            f.write('shared = true\n\n[cluster]\nendpoints = [%s]\nhost = "%s"\ntimeout_ms = 2000\n'
                    % (", ".join('"%s"' % e for e in etcd.endpoints), host))
    return path


def define_loop(sock, secs, out):
    c = svirtpool.Client(sock)
    n = 0
    end = time.perf_counter() + secs
    while time.perf_counter() < end:
        c.define_guest(str(uuidlib.uuid4()))
        n += 1
    c.close()
    out.put(n)


def attach_loop(sock, disk, guest, secs, out):
    c = svirtpool.Client(sock)
    n = 0
    latencies = []
    end = time.perf_counter() + secs
    while time.perf_counter() < end:
        t = time.perf_counter()
        c.attach(guest, disk, "rw")
        latencies.append(time.perf_counter() - t)
        c.detach(guest, disk)
        n += 1
    c.close()
    out.put((n, latencies))


def p99(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")


def measure(socks, disks, secs, clients, attach_clients, busy=None):
    """DefineGuest rate with `clients` per agent; for each count of `attach_clients`,
    attach+detach pairs/s of each agent and the p99 of an attach. `busy`: only that
    many agents get attach clients (the others idle, as on hosts with their own CPUs)."""
    results, elapsed = run(define_loop, [(s,) for s in socks for _ in range(clients)], secs)
    define_rate = sum(results) / elapsed
    attach = []
    socks = socks[:busy] if busy else socks
    for n in attach_clients:
        args = []
        for a, s in enumerate(socks):
            c = svirtpool.Client(s)
            for i in range(n):
                g = str(uuidlib.uuid4())
                c.define_guest(g, "bench")
                args.append((s, disks[a * max(attach_clients) + i], g))
            c.close()
        results, elapsed = run(attach_loop, args, secs)
        per_agent = [sum(r[0] for r in results[a * n:(a + 1) * n]) / elapsed for a in range(len(socks))]
        attach.append((n, per_agent, p99([x for _, lat in results for x in lat])))
    return define_rate, attach


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("--clients", type=int, default=4, help="DefineGuest clients per agent")
    ap.add_argument("--attach-clients", default="1,8", help="attach+detach clients per agent")
    ap.add_argument("--binary", default="target/release/svirt-pool")
    ap.add_argument("--no-check-perf", action="store_true", help="skip etcdctl check perf (60 s)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("cluster.py: run as root")
    binary = os.path.abspath(a.binary)
    attach_clients = [int(x) for x in a.attach_clients.split(",")]
    os.makedirs(IMAGES, mode=0o711, exist_ok=True)
    work = tempfile.mkdtemp(prefix="svirt-bench-cluster-")
    shared = tempfile.mkdtemp(prefix="svirt-bench-shared-", dir=IMAGES)
    agents = []
    etcd = None
    try:
        disks = []
        for i in range(3 * max(attach_clients)):
            disks.append(os.path.join(shared, "disk%d.img" % i))
            open(disks[-1], "wb").close()

        # One agent alone, on its SQLite state.
        state = os.path.join(work, "alone")
        os.makedirs(state)
        agent = Agent(binary, write_config(state, shared)).wait_ready()
        alone = measure([os.path.join(state, "api.sock")], disks, a.secs, a.clients, attach_clients)
        agent.stop()

        etcd = Etcd(os.path.join(work, "etcd"))
        socks = []
        for host in "abc":
            state = os.path.join(work, host)
            os.makedirs(state)
            agents.append(Agent(binary, write_config(state, shared, host, etcd)).wait_ready())
            socks.append(os.path.join(state, "api.sock"))
        cluster = measure(socks, disks, a.secs, a.clients, attach_clients)
        one_busy = measure(socks, disks, a.secs, a.clients, attach_clients, busy=1)
        perf = None
        if not a.no_check_perf:
            r = subprocess.run(etcd.ctl(["check", "perf", "--load=l"]), capture_output=True, text=True)
            perf = [l for l in (r.stdout + r.stderr).strip().splitlines() if "%" not in l][-5:]
    finally:
        for agent in agents:
            agent.stop()
        if etcd:
            etcd.stop()
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    print("cluster mode: 3 agents on a 3-member etcd (loopback) vs 1 agent alone (SQLite), %.0f s each" % a.secs)
    print("  DefineGuest/s, %d clients per agent:  3 agents %7.0f in total (goal >= 500)   1 agent alone %7.0f"
          % (a.clients, cluster[0], alone[0]))
    print("  shared-pool attach+detach pairs/s per agent (goal >= 300), attach p99 (goal <= 25 ms):")
    for (n, per_agent, lat), (_, one, one_lat), (_, alone_rate, alone_lat) in zip(cluster[1], one_busy[1], alone[1]):
        print("    %d client%s per agent: one agent busy %5.0f, p99 %5.1f ms   all 3 busy (one machine's CPUs) %s, p99 %5.1f ms"
              "   alone (SQLite) %5.0f, p99 %4.1f ms"
              % (n, "" if n == 1 else "s", one[0], one_lat * 1e3, " ".join("%4.0f" % r for r in per_agent),
                 lat * 1e3, alone_rate[0], alone_lat * 1e3))
    if perf:
        print("  etcdctl check perf --load=l (etcd alone on this machine; its goal of 8,000 writes/s is beyond it here):")
        for line in perf:
            print("    " + line)


if __name__ == "__main__":
    main()
