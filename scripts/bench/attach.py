#!/usr/bin/env python3
"""Attach + detach through the API: durable pairs per second, 1 and 8 clients.

Each client has its own guest and disk and runs attach(rw) + detach pairs for --secs
seconds; the rate is the total over all clients. Beside it, the floor on the same disk:
two SQLite WAL commits with synchronous=FULL per pair (what a durable attach and a
durable detach cannot do without), by the same number of processes; and those two
commits plus two round trips of the cheapest call the agent answers (varlink GetInfo,
served without touching anything), the floor of a durable call through this API and
client whatever the server does. The CPU time
per pair of the agent (all threads) and of the clients is printed too: on a shared
machine it is steadier than the rates, and on 2 cores their sum bounds the rate.
Needs root and a release build (cargo build --release).

    scripts/bench/attach.py [--secs 5] [--clients 1,8]
"""
import argparse
import multiprocessing
import os
import shutil
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, os.path.join(HERE, ".."))
import svirtpool  # noqa: E402
from agentproc import Agent  # noqa: E402

sys.path.insert(0, HERE)
from pools import IMAGES, write_config  # noqa: E402


def guest_uuid(i):
    return "6a1f0c2e-0000-4000-8000-%012d" % i


def client_loop(sock, disk, uuid, secs, out):
    c = svirtpool.Client(sock)
    n = 0
    end = time.perf_counter() + secs
    cpu = time.process_time()
    while time.perf_counter() < end:
        c.attach(uuid, disk, "rw")
        c.detach(uuid, disk)
        n += 1
    c.close()
    out.put((n, time.process_time() - cpu))


def floor_loop(db, i, sock, secs, out):
    """Two durable commits per pair; with `sock`, each followed by a GetInfo call."""
    c = svirtpool.Client(sock) if sock else None
    con = sqlite3.connect(db, isolation_level=None, timeout=30)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    n = 0
    end = time.perf_counter() + secs
    while time.perf_counter() < end:
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO a VALUES (?, ?)", (i, "rw"))
        con.execute("COMMIT")
        if c:
            c.call("org.varlink.service.GetInfo")
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM a WHERE g = ?", (i,))
        con.execute("COMMIT")
        if c:
            c.call("org.varlink.service.GetInfo")
        n += 1
    con.close()
    if c:
        c.close()
    out.put((n, 0.0))


def run_processes(target, args_list, secs):
    """One process per args (each called target(*args, secs, queue), putting one
    result); returns the results and the seconds from the first start to the last."""
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=target, args=args + (secs, out)) for args in args_list]
    t = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return results, time.perf_counter() - t


def run_parallel(target, args_of, clients, secs):
    results, elapsed = run_processes(target, [args_of(i) for i in range(clients)], secs)
    total = sum(n for n, _ in results)
    return total / elapsed, total, sum(cpu for _, cpu in results)


def agent_cpu_secs(pid):
    """User + system CPU the agent has used (all its threads): steadier than a rate on
    a shared machine."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--binary", default="target/release/svirt-pool")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("attach.py: run as root")
    counts = [int(x) for x in a.clients.split(",")]
    os.makedirs(IMAGES, mode=0o711, exist_ok=True)
    pool = tempfile.mkdtemp(prefix="svirt-bench-attach-", dir=IMAGES)
    state = tempfile.mkdtemp(prefix="svirt-bench-state-")
    rows = []
    try:
        disks = []
        for i in range(max(counts)):
            disks.append(os.path.join(pool, "disk%d.img" % i))
            open(disks[-1], "wb").close()
        agent = Agent(os.path.abspath(a.binary), write_config(state, pool)).wait_ready()
        sock = os.path.join(state, "api.sock")
        try:
            c = svirtpool.Client(sock)
            for i in range(max(counts)):
                c.define_guest(guest_uuid(i), "bench%d" % i)
            c.close()
            for n in counts:
                cpu0 = agent_cpu_secs(agent.proc.pid)
                rate, pairs, client_cpu = run_parallel(client_loop, lambda i: (sock, disks[i], guest_uuid(i)), n, a.secs)
                cpu_per_pair = (agent_cpu_secs(agent.proc.pid) - cpu0) / max(pairs, 1)
                db = os.path.join(state, "floor.db")
                con = sqlite3.connect(db)
                con.execute("CREATE TABLE IF NOT EXISTS a (g INTEGER, mode TEXT)")
                con.commit()
                con.close()
                floor, _, _ = run_parallel(floor_loop, lambda i: (db, i, None), n, a.secs)
                floor_api, _, _ = run_parallel(floor_loop, lambda i: (db, i, sock), n, a.secs)
                rows.append((n, rate, floor, floor_api, cpu_per_pair, client_cpu / max(pairs, 1)))
        finally:
            agent.stop()
    finally:
        shutil.rmtree(pool, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    print("attach+detach pairs/s, durable (%.0f s each)" % a.secs)
    for n, rate, floor, floor_api, cpu, client_cpu in rows:
        print("  %d client%s: %7.0f pairs/s   floor (2 WAL FULL commits/pair) %7.0f   ratio %.2f"
              "   + 2 GetInfo round trips %7.0f   CPU ms/pair: agent %.2f, clients %.2f"
              % (n, "" if n == 1 else "s", rate, floor, rate / floor, floor_api, cpu * 1e3, client_cpu * 1e3))


if __name__ == "__main__":
    main()
