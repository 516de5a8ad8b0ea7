#!/usr/bin/env python3
"""Times svirt-pool's libvirt qemu hook as libvirtd calls it: `prepare begin` and
`release end` for a domain with three pool disks (rw, shareable, read-only cdrom), with
no agent (the CLI path) and through a running agent. Prints medians of --runs calls.

    sudo python3 scripts/bench/libvirt_hook.py [--runs 20] [--binary target/release/svirt-pool]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

IMAGES = "/var/lib/libvirt/images"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--binary", default="target/release/svirt-pool")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("libvirt_hook.py: run as root")
    binary = os.path.abspath(a.binary)
    os.makedirs(IMAGES, mode=0o711, exist_ok=True)
    pool = tempfile.mkdtemp(prefix="svirt-hookbench-", dir=IMAGES)
    work = tempfile.mkdtemp(prefix="svirt-hookbench-state-")
    try:
        disks = []
        for name in ("a.img", "b.img", "c.iso"):
            path = os.path.join(pool, name)
            with open(path, "wb") as f:
                f.truncate(1 << 20)
            disks.append(path)
        config = os.path.join(work, "c.toml")
        with open(config, "w") as f:
            f.write('state_dir = "%s/state"\n[api]\nsocket = "%s/api.sock"\n[[pool]]\nname = "b"\n'
                    'type = "dir"\npath = "%s"\n[libvirt]\nstatus_dir = "%s/status"\n'
                    % (work, work, pool, work))
        xml = ("<domain type='qemu'><name>bench</name><uuid>11111111-2222-4333-8444-555555555555</uuid>"
               "<devices><disk type='file' device='disk'><source file='%s'/><target dev='vda'/></disk>"
               "<disk type='file' device='disk'><source file='%s'/><target dev='vdb'/><shareable/></disk>"
               "<disk type='file' device='cdrom'><source file='%s'/><target dev='hdc'/><readonly/></disk>"
               "</devices></domain>" % tuple(disks)).encode()

        def call(op, sub):
            t = time.perf_counter()
            r = subprocess.run([binary, "--config", config, "libvirt-hook", "bench", op, sub, "-"],
                               input=xml, capture_output=True)
            elapsed = time.perf_counter() - t
            if r.returncode != 0:
                sys.exit("hook %s %s failed: %s" % (op, sub, r.stderr.decode()))
            return elapsed

        call("prepare", "begin")
        call("release", "end")
        print("%-32s %14s %14s %14s" % ("libvirt hook, 3 pool disks", "prepare p50", "prepare max", "release p50"))
        for label, with_agent in (("no agent (CLI path)", False), ("through the agent", True)):
            agent = None
            if with_agent:
                agent = subprocess.Popen([binary, "--config", config, "agent"], stderr=subprocess.DEVNULL)
                deadline = time.time() + 10
                while not os.path.exists(os.path.join(work, "api.sock")) and time.time() < deadline:
                    time.sleep(0.05)
            prepare, release = [], []
            for _ in range(a.runs):
                prepare.append(call("prepare", "begin"))
                release.append(call("release", "end"))
            print("%-32s %11.1f ms %11.1f ms %11.1f ms" % (
                label, statistics.median(prepare) * 1000, max(prepare) * 1000,
                statistics.median(release) * 1000))
            if agent:
                agent.terminate()
                agent.wait()
    finally:
        shutil.rmtree(pool, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
