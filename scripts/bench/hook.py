#!/usr/bin/env python3
"""Benchmark: the udev RUN hook per event vs a one-shot chcon on the same node.

Builds its own data (a VG on a loop PV, a loop device standing in for the LV node with
the udev properties lvm2 gives a real one), then times, interleaved, N runs of
`svirt-pool-udev-hook` (what the shipped rule runs), of `svirt-pool udev-hook` (the
same hook in the full binary) with that event's environment, and of `chcon` (and, for
a free LV, `setfiles -F` and `matchpathcon`, which load file_contexts too) on the
same node. Both are one process each, as udev would run them. For the attached LV the
floor is timed too: scripts/bench/hook_floor.c, the same state query and label write in
C with the system's libsqlite3 and libselinux and nothing else (no config, no checks),
built here with cc. Needs root, udevd, lvm2 and a release build (cargo build --release).

Usage: scripts/bench/hook.py [--runs N] [--binary PATH]   (the hook is looked for beside PATH)
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

FIXED_DISK = "system_u:object_r:fixed_disk_device_t:s0"
FILE_CONTEXTS = "/etc/selinux/default/contexts/files/file_contexts"
ENV = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")


def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True, env=ENV).stdout.strip()


def quantile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Bed:
    """A VG with one LV, and a loop device standing in for its node."""

    def __init__(self, binary):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="svirt-bench-", dir="/var/tmp")
        self.vg = "svbench_%d" % os.getpid()
        pv = os.path.join(self.dir, "pv.img")
        sh("truncate", "-s", "32M", pv)
        self.pv_loop = sh("losetup", "-f", "--show", pv)
        sh("pvcreate", "-q", self.pv_loop)
        sh("vgcreate", "-q", self.vg, self.pv_loop)
        sh("lvcreate", "-q", "--driverloaded", "n", "-an", "-Zn", "-L", "4M", "-n", "lv1", self.vg)
        vg_uuid = sh("vgs", "--noheadings", "-o", "vg_uuid", self.vg).replace("-", "")
        self.lv_uuid = sh("lvs", "--driverloaded", "n", "--noheadings", "-o", "lv_uuid",
                          self.vg + "/lv1").replace("-", "")
        self.state = os.path.join(self.dir, "state")
        self.config = os.path.join(self.dir, "svirt-pool.toml")
        with open(self.config, "w") as f:
            f.write('state_dir = "%s"\n[api]\nsocket = "%s/api.sock"\n[[pool]]\nname = "vms"\ntype = "lvm"\nvg = "%s"\n'
                    'lvm_args = ["--driverloaded", "n"]\n' % (self.state, self.state, self.vg))
        backing = os.path.join(self.dir, "lv1.node")
        sh("truncate", "-s", "4M", backing)
        # udevd reads /run/udev/rules.d but does not create it.
        os.makedirs("/run/udev/rules.d", exist_ok=True)
        self.rule = "/run/udev/rules.d/90-svirt-bench-%d.rules" % os.getpid()
        with open(self.rule, "w") as f:
            f.write('SUBSYSTEM=="block", KERNEL=="loop*", ATTR{loop/backing_file}=="%s", '
                    'ENV{DM_VG_NAME}="%s", ENV{DM_LV_NAME}="lv1", ENV{DM_UUID}="LVM-%s%s"\n'
                    % (backing, self.vg, vg_uuid, self.lv_uuid))
        sh("udevadm", "control", "--reload")
        self.node = sh("losetup", "-f", "--show", backing)
        sh("udevadm", "settle")
        props = dict(line.split("=", 1) for line in
                     sh("udevadm", "info", "--query=property", self.node).splitlines())
        props["ACTION"] = "change"
        props["SVIRT_POOL_CONFIG"] = self.config
        props["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        self.event_env = props

    def cli(self, *args):
        return subprocess.run([self.binary, "--config", self.config, *args], check=True,
                              capture_output=True, text=True).stdout

    def close(self):
        for cmd in (["losetup", "-d", self.node], ["vgremove", "-f", "-q", "--driverloaded", "n", self.vg],
                    ["pvremove", "-q", self.pv_loop], ["losetup", "-d", self.pv_loop]):
            subprocess.run(cmd, capture_output=True, env=ENV)
        os.unlink(self.rule)
        subprocess.run(["udevadm", "control", "--reload"])
        subprocess.run(["rm", "-rf", self.dir])


def build_floor(dir):
    """Compiles hook_floor.c; None (and why) if this machine cannot."""
    out = os.path.join(dir, "hook_floor")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hook_floor.c")
    r = subprocess.run(["cc", "-O2", "-o", out, src, "-l:libsqlite3.so.0", "-l:libselinux.so.1"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("hook.py: the C floor is left out: %s" % r.stderr.strip(), file=sys.stderr)
        return None
    return out


def time_runs(runs, argv_env_pairs, reset):
    """Times each (argv, env) once per round, interleaved, resetting the label first."""
    times = [[] for _ in argv_env_pairs]
    for _ in range(runs):
        for i, (argv, env) in enumerate(argv_env_pairs):
            reset()
            t = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[i].append((time.perf_counter() - t) * 1000)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--binary", default="target/release/svirt-pool")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("hook.py: run as root")
    bed = Bed(os.path.abspath(a.binary))
    slim = os.path.join(os.path.dirname(bed.binary), "svirt-pool-udev-hook")
    hooks = [("svirt-pool-udev-hook", [slim], bed.event_env),
             ("svirt-pool udev-hook", [bed.binary, "udev-hook"], bed.event_env)]
    rows = []
    try:
        guest = "6f7a1c2e-0f4b-4d1e-9a57-3c1d2b8e9f00"
        bed.cli("guest", "define", "--uuid", guest)
        # Attached LV: the common case on activation/refresh. The peer writes the same
        # label with one chcon.
        bed.cli("attach", "--guest", guest, "--volume", bed.vg + "/lv1", "--mode", "rw")
        label = subprocess.run(["getfattr", "--only-values", "-n", "security.selinux", bed.node],
                               capture_output=True, text=True).stdout.rstrip("\0")
        reset = lambda: subprocess.run(["setfattr", "-n", "security.selinux", "-v", FIXED_DISK, bed.node])
        cmds = list(hooks)
        floor = build_floor(bed.dir)
        if floor:
            cmds.append(("C floor (hook_floor.c)", [floor, os.path.join(bed.state, "state.db"), "vms",
                                                     bed.lv_uuid, label, bed.node], ENV))
        cmds.append(("chcon", ["chcon", label, bed.node], ENV))
        rows.append(("attached LV (relabel)", cmds, time_runs(a.runs, [c[1:] for c in cmds], reset)))
        # Free LV: the resting label comes from file_contexts. setfiles relabels from the
        # same file (restorecon does nothing without a loaded policy); matchpathcon only
        # loads it and looks the node up; chcon is handed the label.
        bed.cli("detach", "--guest", guest, "--volume", bed.vg + "/lv1")
        reset = lambda: subprocess.run(["setfattr", "-n", "security.selinux", "-v", label, bed.node])
        cmds = hooks + [("setfiles -F", ["setfiles", "-F", FILE_CONTEXTS, bed.node], ENV),
                        ("matchpathcon", ["matchpathcon", bed.node], ENV),
                        ("chcon", ["chcon", FIXED_DISK, bed.node], ENV)]
        rows.append(("free LV (file_contexts)", cmds, time_runs(a.runs, [c[1:] for c in cmds], reset)))
    finally:
        bed.close()
    print("per event, %d runs, interleaved; ratio = median / chcon's median" % a.runs)
    print("%-26s %-24s %10s %10s %7s" % ("case", "command", "median", "p99", "ratio"))
    for case, cmds, times in rows:
        chcon = statistics.median(times[-1])
        for (name, _, _), t in zip(cmds, times):
            m = statistics.median(t)
            print("%-26s %-24s %7.2f ms %7.2f ms %6.2fx" % (case, name, m, quantile(t, 0.99), m / chcon))


if __name__ == "__main__":
    main()
