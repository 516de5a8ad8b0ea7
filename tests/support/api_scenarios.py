#!/usr/bin/env python3
"""API scenarios driven with the Python client (clients/python/svirtpool.py), run by
tests/api.rs against a running agent. Each scenario asserts and exits non-zero on the
first failure, printing what went wrong.

    api_scenarios.py SCENARIO SOCKET [ARGS...]
"""
import json
import os
import struct
import socket
import sys
import tempfile
import threading
import time

import svirtpool
from svirtpool import Client, VarlinkError

UUID1 = "6f7a1c2e-0f4b-4d1e-9a57-3c1d2b8e9f01"
UUID2 = "6f7a1c2e-0f4b-4d1e-9a57-3c1d2b8e9f02"


def expect_error(name, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except VarlinkError as e:
        assert e.name == name, "expected %s, got %s" % (name, e)
        return e
    raise AssertionError("expected %s, call succeeded" % name)


def label(path):
    return os.getxattr(path, "security.selinux", follow_symlinks=False).rstrip(b"\0").decode()


def every_method(sock, pool_dir):
    """Root calls every method of io.svirtpool."""
    c = Client(sock)
    info = c.call("org.varlink.service.GetInfo")[0]
    assert "io.svirtpool" in info["interfaces"], info
    idl = c.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.svirtpool"})[0]
    shipped = open(os.environ["SVIRT_POOL_IDL"]).read()
    assert idl["description"].rstrip("\n") == shipped.rstrip("\n"), \
        "api/io.svirtpool.varlink differs from what the agent serves: regenerate it (docs/api.md)"
    for m in ("ListPools", "ListVolumes", "DefineGuest", "UndefineGuest", "GetGuest", "ListGuests",
              "Attach", "Detach", "Release", "Import", "CreateSaveImage", "Open", "Monitor",
              "CreateVolume", "DeleteVolume", "CheckPath"):
        assert "method %s(" % m in idl["description"], m
    pools = c.list_pools()
    assert [p["name"] for p in pools] == ["test"], pools
    g1 = c.define_guest(UUID1, "one")
    assert c.define_guest(UUID1) == g1, "DefineGuest is idempotent"
    g2 = c.define_guest(UUID2, "two")
    assert g1["categories"] != g2["categories"]
    assert {g["uuid"] for g in c.list_guests()} == {UUID1, UUID2}

    # Import: a qcow2 and an ISO, formats from their magic, resting label, no clobbering.
    fd, qcow = tempfile.mkstemp(suffix=".qcow2")
    # A qcow2 v3 header (magic, version, no backing, 64 KiB clusters, 1 MiB, 104-byte header).
    header = b"QFI\xfb" + struct.pack(">IQIIQ", 3, 0, 0, 16, 1 << 20)
    header += b"\0" * (100 - len(header)) + struct.pack(">I", 104)
    os.write(fd, header + b"\0" * (4096 - len(header)))
    os.close(fd)
    r = c.import_file(qcow, "test", "disk.qcow2")
    assert r["label"] == "system_u:object_r:virt_image_t:s0", r
    assert open(os.path.join(pool_dir, "disk.qcow2"), "rb").read(4) == b"QFI\xfb"
    expect_error("io.svirtpool.AlreadyExists", c.import_file, qcow, "test", "disk.qcow2")
    expect_error("io.svirtpool.InvalidArgument", c.import_file, qcow, "test", "../escape")
    expect_error("io.svirtpool.PoolNotFound", c.import_file, qcow, "nosuchpool", "x")
    iso = bytearray(0x9000)
    iso[0x8001:0x8006] = b"CD001"
    r_fd, w_fd = os.pipe()  # a pipe works too: the agent only reads the descriptor
    os.write(w_fd, bytes(iso))
    os.close(w_fd)
    c.import_fd(r_fd, "test", "media.iso")
    os.close(r_fd)
    vols = {v["name"]: v for v in c.list_volumes("test")}
    assert vols["disk.qcow2"]["format"] == "qcow2", vols
    assert vols["media.iso"]["format"] == "iso", vols
    assert vols["media.iso"]["size"] == 0x9000, vols
    page = c.call("ListVolumes", {"pool": "test", "limit": 1})[0]
    assert len(page["volumes"]) == 1 and page["next"] == page["volumes"][0]["address"], page
    page2 = c.call("ListVolumes", {"pool": "test", "limit": 1, "after": page["next"]})[0]
    assert page2["volumes"][0]["name"] > page["volumes"][0]["name"], (page, page2)
    assert [v["name"] for v in c.list_volumes("test", format="iso")] == ["media.iso"]
    expect_error("io.svirtpool.InvalidArgument", c.call, "ListVolumes", {"pool": "test", "state": "x"})
    pools = {p["name"]: p for p in c.list_pools()}
    assert pools["test"]["capacity"] >= pools["test"]["free"] > 0, pools
    expect_error("io.svirtpool.PoolNotFound", c.call, "ListVolumes", {"pool": "nope"})
    # CreateVolume / DeleteVolume: an overlay on a new base, listed with its chain.
    base = c.create_volume("test", "base.qcow2", "qcow2", capacity=1 << 26)
    assert base["label"] == "system_u:object_r:virt_image_t:s0", base
    c.create_volume("test", "top.qcow2", backing="base.qcow2")
    top = [v for v in c.list_volumes("test", prefix="top")][0]
    assert top["capacity"] == 1 << 26 and top["format"] == "qcow2", top
    assert top["backing"] == [{"path": os.path.join(pool_dir, "base.qcow2"), "format": "qcow2"}], top
    expect_error("io.svirtpool.AlreadyExists", c.create_volume, "test", "top.qcow2", "raw", 1)
    expect_error("io.svirtpool.InvalidArgument", c.create_volume, "test", "x.vmdk", "vmdk", 1)
    check = c.check_path(os.path.join(pool_dir, "top.qcow2"))
    assert check["steps"][-1]["path"] == os.path.join(pool_dir, "top.qcow2"), check
    assert not check["reachable"] and check["fix"], check  # resting: no guest may open it
    expect_error("io.svirtpool.InvalidArgument", c.check_path, "relative/path")
    c.delete_volume("test", "top.qcow2")
    c.delete_volume("test", "base.qcow2")
    assert not os.path.exists(os.path.join(pool_dir, "base.qcow2"))

    disk = os.path.join(pool_dir, "disk.qcow2")
    media = os.path.join(pool_dir, "media.iso")
    r = c.attach(UUID1, disk, "rw")
    assert r["label"] == g1["image_label"] and label(disk) == g1["image_label"], r
    e = expect_error("io.svirtpool.Refused", c.attach, UUID2, disk, "ro")
    assert UUID1 in e.parameters["reason"], e
    expect_error("io.svirtpool.GuestNotFound", c.attach, "6f7a1c2e-0f4b-4d1e-9a57-3c1d2b8e9fff", disk, "rw")
    expect_error("io.svirtpool.InvalidArgument", c.attach, UUID1, disk, "rwx")
    expect_error("io.svirtpool.Refused", c.attach, UUID1, "/etc/shadow", "rw")
    detail = c.get_guest(UUID1)
    assert detail["attachments"] == [{"pool": "test", "volume": "disk.qcow2", "mode": "rw"}], detail

    # Open: attaches and hands back the file, read-only for ro.
    res, fd = c.open_volume(UUID2, media, "ro")
    assert res["label"] == "system_u:object_r:virt_content_t:s0", res
    assert os.read(fd, 1) == b"\0"
    try:
        os.write(fd, b"x")
        raise AssertionError("an ro volume was opened writable")
    except OSError:
        pass
    os.close(fd)

    # CreateSaveImage: labeled for the guest before it exists, returned writable.
    res, fd = c.create_save_image(UUID2, "test", "two.save")
    os.write(fd, b"saved state")
    os.close(fd)
    save = os.path.join(pool_dir, "two.save")
    assert label(save) == g2["image_label"], label(save)
    assert open(save, "rb").read() == b"saved state"
    expect_error("io.svirtpool.AlreadyExists", c.create_save_image, UUID2, "test", "two.save")

    r = c.detach(UUID1, disk)
    assert r["label"] == "system_u:object_r:virt_image_t:s0" == label(disk), r
    assert c.release(UUID2) == 2
    assert label(save) == "system_u:object_r:virt_image_t:s0"
    assert c.undefine_guest(UUID2) == 0
    c.attach(UUID1, disk, "shared")
    expect_error("io.svirtpool.Refused", c.undefine_guest, UUID1)
    assert c.undefine_guest(UUID1, force=True) == 1
    assert label(disk) == "system_u:object_r:virt_image_t:s0"
    expect_error("io.svirtpool.GuestNotFound", c.get_guest, UUID1)
    c.close()
    os.unlink(qcow)


def member(sock, pool_dir, own_file):
    """A non-root member of the API group (by its gid): may operate, not forget guests.
    It imports a file only it can read, by passing the descriptor."""
    assert os.getuid() != 0
    try:
        open("/etc/shadow").close()
        raise AssertionError("this peer can read /etc/shadow: the test means nothing")
    except PermissionError:
        pass
    c = Client(sock)
    r = c.import_file(own_file, "test", "users.iso")
    assert open(own_file, "rb").read() == b"only nobody can read this"
    expect_error("io.svirtpool.InvalidArgument", c.call, "Import", {"pool": "test", "name": "nofd.iso"})
    assert not os.path.exists(os.path.join(pool_dir, "nofd.iso"))
    g = c.define_guest(UUID1, "member's")
    c.attach(UUID1, os.path.join(pool_dir, "users.iso"), "ro")
    e = expect_error("io.svirtpool.PermissionDenied", c.undefine_guest, UUID1, True)
    assert e.parameters["method"] == "UndefineGuest", e
    print(json.dumps({"imported": r, "guest": g}))


def deputy(sock, pool_dir, root_guest):
    """A member tries to use the agent (root) as its deputy: a pool file only root may
    read, another user's guest and its running disk. Every attempt is refused."""
    assert os.getuid() != 0
    c = Client(sock)
    secret = os.path.join(pool_dir, "root-only.img")
    disk = os.path.join(pool_dir, "victim.img")
    try:
        open(secret, "rb").close()
        raise AssertionError("this peer can read root-only.img: the test means nothing")
    except PermissionError:
        pass
    c.define_guest(UUID1, "member's")
    denied = "io.svirtpool.PermissionDenied"
    # Its own guest, a file it may not read: no descriptor, no label.
    expect_error(denied, c.open_volume, UUID1, secret, "ro")
    expect_error(denied, c.attach, UUID1, secret, "ro")
    # A readable file, but for writing: refused too (the member may only read it).
    expect_error(denied, c.open_volume, UUID1, disk, "rw")
    # Another user's guest: nothing it holds can be taken, opened or changed.
    expect_error(denied, c.open_volume, root_guest, disk, "rw")
    expect_error(denied, c.detach, root_guest, disk)
    expect_error(denied, c.release, root_guest)
    expect_error(denied, c.create_save_image, root_guest, "test", "stolen.save")
    expect_error(denied, c.define_guest, root_guest, "renamed by a member")
    assert not os.path.exists(os.path.join(pool_dir, "stolen.save"))
    # An overlay is no way around it: not a new one on the secret, not one already
    # there (world-readable itself), not deleting root's files.
    expect_error(denied, c.create_volume, "test", "mine.qcow2", "qcow2", None, "root-only.img")
    assert not os.path.exists(os.path.join(pool_dir, "mine.qcow2"))
    expect_error(denied, c.attach, UUID1, os.path.join(pool_dir, "on-secret.qcow2"), "ro")
    expect_error(denied, c.delete_volume, "test", "root-only.img")
    # Nor through libvirt's hook (root's alone): a domain whose disk names a label of
    # its own would have the agent write any label on any pool file.
    domain = (
        "<domain type='kvm'><name>member</name><uuid>%s</uuid><devices>"
        "<disk type='file' device='disk'><source file='%s'><seclabel model='selinux' "
        "relabel='yes'><label>system_u:object_r:shadow_t:s0</label></seclabel></source>"
        "<target dev='vda'/></disk></devices></domain>" % (UUID1, disk))
    e = expect_error(denied, c.call, "LibvirtHook",
                     {"op": "prepare", "subop": "begin", "xml": domain})
    assert e.parameters["method"] == "LibvirtHook", e
    # What it may: read a world-readable file through its own guest.
    r, fd = c.open_volume(UUID1, os.path.join(pool_dir, "public.iso"), "ro")
    assert os.read(fd, 6) == b"public"
    os.close(fd)
    print(json.dumps({"opened": r}))


def outsider(sock, pool_dir):
    """Neither root nor in the group: read-only listing (api.read_only_for_all), no changes."""
    assert os.getuid() != 0
    c = Client(sock)
    assert c.list_pools()[0]["name"] == "test"
    c.list_volumes("test")
    c.list_guests()
    for call in (lambda: c.define_guest(UUID2),
                 lambda: c.attach(UUID1, os.path.join(pool_dir, "users.iso"), "rw"),
                 lambda: c.release(UUID1),
                 lambda: c.create_save_image(UUID1, "test", "x.save")):
        expect_error("io.svirtpool.PermissionDenied", call)
    assert not os.path.exists(os.path.join(pool_dir, "x.save"))


def revoked(sock, ready, go):
    """A member holds its connection open while root takes it out of the API group: its
    next call on that same connection is refused."""
    assert os.getuid() != 0
    c = Client(sock)
    c.list_guests()
    c.define_guest(UUID2, "while-a-member")
    open(ready, "w").close()
    deadline = time.monotonic() + 20
    while not os.path.exists(go):
        assert time.monotonic() < deadline, "root never took the user out of the group"
        time.sleep(0.05)
    # Listing stays open to everyone here (api.read_only_for_all); changes do not.
    c.list_guests()
    expect_error("io.svirtpool.PermissionDenied", c.define_guest, UUID1, "after")
    expect_error("io.svirtpool.PermissionDenied", c.release, UUID2)


def raw_connect(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    return s


def closed_or_error(s):
    """True when the agent closed the connection or answered with an error."""
    try:
        data = s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        return True
    return data == b"" or b'"error"' in data


def served_quickly(sock, limit=2.0):
    t = time.monotonic()
    with Client(sock, timeout=limit) as c:
        c.list_pools()
    return time.monotonic() - t


def abuse(sock, idle_timeout):
    """Malformed, unknown, oversized and idle clients; everyone else is still served."""
    s = raw_connect(sock)
    s.sendall(b'{"method": "io.svirtpool.ListPools", "parameters": {\0')
    assert closed_or_error(s), "malformed JSON was answered as if valid"
    s.close()
    # An unknown method: zlink 0.8 closes the connection rather than answering
    # MethodNotFound (see docs/api.md); either way nobody else notices.
    s = raw_connect(sock)
    s.sendall(b'{"method": "io.svirtpool.Explode", "parameters": {}}\0')
    assert closed_or_error(s), "an unknown method was answered as if valid"
    s.close()
    assert served_quickly(sock) < 2.0
    # 10 MiB without a terminator: the agent closes the connection at its limit.
    s = raw_connect(sock)
    chunk = b'{"method":"io.svirtpool.ListPools","parameters":{"x":"' + b"A" * (1 << 20)
    sent = 0
    try:
        while sent < 10 << 20:
            s.sendall(chunk)
            sent += len(chunk)
        s.sendall(b'"}}\0')
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_or_error(s), "a 10 MiB request was not refused"
    s.close()
    # 200 idle connections, and a monitor that never reads.
    idle = [raw_connect(sock) for _ in range(200)]
    lazy = raw_connect(sock)
    lazy.sendall(b'{"method":"io.svirtpool.Monitor","more":true}\0')
    took = served_quickly(sock)
    assert took < 2.0, "a client waited %.2fs beside 200 idle connections" % took
    time.sleep(idle_timeout + 1.5)
    assert idle[0].recv(1) == b"", "an idle connection was not closed after the idle timeout"
    for s in idle:
        s.close()
    took = served_quickly(sock)
    assert took < 2.0, took
    lazy.close()
    print(json.dumps({"served_after_abuse_s": took}))


def monitor(sock, pool_dir):
    """Monitor streams an event when a file appears in the pool."""
    events = []
    ready = threading.Event()

    def listen():
        c = Client(sock, timeout=10)
        it = c.monitor()
        ready.set()
        for event in it:
            events.append(event)
            if event["volume"].endswith("appeared.img"):
                return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    ready.wait(5)
    time.sleep(0.3)  # the Monitor call is sent before events are produced
    with open(os.path.join(pool_dir, "appeared.img"), "wb") as f:
        f.write(b"new")
    t.join(5)
    hits = [e for e in events if e["volume"].endswith("appeared.img")]
    assert hits, "no event for the new file: %r" % events
    assert hits[0]["pool"] == "test" and hits[0]["kind"] in ("appeared", "relabeled"), hits
    assert hits[0]["label"] == "system_u:object_r:virt_image_t:s0", hits


def as_user(uid, gid, fn):
    """Runs fn in a child process with uid/gid (no supplementary groups); returns its
    exit status (0 when fn returned, 1 when it raised)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            fn()
            code = 0
        except BaseException as e:  # noqa: B902 - report anything, then exit
            print("child uid %d: %r" % (uid, e), file=sys.stderr)
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def monitor_connection(sock):
    s = raw_connect(sock)
    s.sendall(b'{"method": "io.svirtpool.Monitor", "more": true}\0')
    return s


def hogs(sock, per_user):
    """One user holds every connection it may, and streams; root and other users are
    served meanwhile, and the hog's slots come back as soon as it hangs up."""
    per_user = int(per_user)
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(done_w)
        code = 1
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            held = [monitor_connection(sock) for _ in range(per_user)]
            extra = raw_connect(sock)
            try:
                extra.sendall(b'{"method": "io.svirtpool.ListPools"}\0')
            except BrokenPipeError:
                pass
            assert closed_or_error(extra), "a connection over the per-user limit was served"
            os.write(ready_w, b"x")
            os.read(done_r, 1)
            for h in held:
                h.close()
            code = 0
        except BaseException as e:  # noqa: B902
            print("hog: %r" % e, file=sys.stderr)
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    assert os.read(ready_r, 1) == b"x", "the hog failed"
    t = served_quickly(sock)
    assert t < 2.0, "root waited %.1f s beside the hog" % t
    assert as_user(1, 1, lambda: served_quickly(sock)) == 0, "another user was not served"
    os.write(done_w, b"x")
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, "the hog failed"
    # Its slots are free again at once (not at the next event, which never comes here):
    # it may open as many connections as before.
    started = time.monotonic()
    time.sleep(0.3)

    def again():
        held = [monitor_connection(sock) for _ in range(per_user)]
        for h in held:
            h.settimeout(0.2)
            try:
                assert h.recv(1) != b"", "a monitor was refused: slots not given back"
            except socket.timeout:
                pass  # streaming: served and waiting for events
    assert as_user(65534, 65534, again) == 0, "the hung-up monitors kept their slots"
    print("hogs: root served in %.3f s; slots back after %.3f s" % (t, time.monotonic() - started))


def endless_pipe(sock, idle_timeout):
    """A member imports from a pipe it never closes: the agent gives up after the idle
    timeout and lets go of the pipe, and root is served meanwhile. Then from a pipe
    that sends one byte at a time: cut when a window of the idle timeout brings less
    than 64 KiB."""
    idle = float(idle_timeout)
    r, w = os.pipe()
    result = {}

    def run():
        started = time.monotonic()
        try:
            Client(sock, timeout=idle + 20).import_fd(r, "test", "endless.iso")
            result["error"] = None
        except Exception as e:  # noqa: B902 - an error reply or a closed connection
            result["error"] = e
        result["secs"] = time.monotonic() - started

    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    os.write(w, b"some bytes, then nothing")
    assert served_quickly(sock) < 2.0
    t.join(idle + 30)
    assert not t.is_alive(), "the import never ended"
    assert result["error"] is not None, "an endless pipe was imported"
    os.close(r)
    # Nobody reads the pipe any more: the agent closed its end too.
    time.sleep(0.5)
    try:
        os.write(w, b"more")
        raise AssertionError("the agent still holds the pipe")
    except BrokenPipeError:
        pass
    print("endless pipe: given up after %.1f s (%s)" % (result["secs"], result["error"]))

    # A pipe that is never quite idle: one byte every 0.3 s.
    r, w = os.pipe()
    t = threading.Thread(target=run)
    started = time.monotonic()
    t.start()
    while t.is_alive() and time.monotonic() - started < idle + 20:
        try:
            os.write(w, b"x")
        except BrokenPipeError:
            break
        time.sleep(0.3)
    t.join(5)
    assert not t.is_alive(), "a trickling pipe held the import for ever"
    assert result["error"] is not None, "a trickle was imported"
    assert result["secs"] < 2 * idle + 5, "the trickle was cut after %.1f s" % result["secs"]
    os.close(r)
    os.close(w)
    print("trickling pipe: given up after %.1f s (%s)" % (result["secs"], result["error"]))


def bounds(sock, pool_dir, count):
    """Inputs are bounded and every list is paged."""
    c = Client(sock)
    expect_error("io.svirtpool.InvalidArgument", c.define_guest, UUID2, "x" * 300)
    expect_error("io.svirtpool.InvalidArgument", c.attach, UUID1, "relative.img", "rw")
    expect_error("io.svirtpool.InvalidArgument", c.attach, UUID1, "/" + "x" * 5000, "rw")
    count = int(count)
    pages, times = 0, []
    after, seen = None, []
    while True:
        started = time.monotonic()
        page = c.call("ListGuests", {} if after is None else {"after": after})[0]
        times.append(time.monotonic() - started)
        pages += 1
        assert len(page["guests"]) <= 100
        seen.extend(g["uuid"] for g in page["guests"])
        after = page.get("next")
        if after is None:
            break
    assert len(seen) == count and len(set(seen)) == count, (len(seen), count)
    assert seen == sorted(seen), "pages are in UUID order"
    assert len(c.list_guests()) == count
    print("bounds: %d guests in %d pages, page times %s s"
          % (count, pages, ", ".join("%.3f" % t for t in times)))


def odd_names(sock, pool_dir):
    """A file whose name is not UTF-8 is listed with an address that names it exactly,
    and can be attached through that address."""
    import base64
    c = Client(sock)
    c.define_guest(UUID1, "odd")
    odd = [v for v in c.list_volumes("test") if v["address"].startswith("base64:")]
    assert len(odd) == 1, odd
    raw = base64.b64decode(odd[0]["address"][len("base64:"):])
    assert raw == os.fsencode(pool_dir) + b"/\xff\xfe-odd.img", raw
    r = c.attach(UUID1, odd[0]["address"], "ro")
    assert label(raw) == "system_u:object_r:virt_content_t:s0", label(raw)
    # The lossy name addresses nothing.
    expect_error("io.svirtpool.Refused", c.attach, UUID1, odd[0]["path"], "ro")
    print(json.dumps({"attached": r}))


def listing_is_current(sock, pool_dir):
    """The agent keeps a directory's sorted listing between pages while the directory
    is unchanged: a listing still shows what the directory holds now."""
    d = os.path.join(pool_dir, "settled")

    def names():
        # A connection each time: an idle one is closed while this waits.
        c = Client(sock)
        try:
            return [v["name"] for v in c.list_volumes("test", prefix="settled/")]
        finally:
            c.close()

    assert names() == ["settled/a.img"], names()
    # Left alone for longer than the agent's settling time: now its listing is kept.
    time.sleep(3.5)
    assert names() == ["settled/a.img"], names()
    assert names() == ["settled/a.img"], names()
    open(os.path.join(d, "b.img"), "w").close()
    assert names() == ["settled/a.img", "settled/b.img"], names()
    time.sleep(3.5)
    assert names() == ["settled/a.img", "settled/b.img"], names()
    os.rename(os.path.join(d, "a.img"), os.path.join(d, "c.img"))
    assert names() == ["settled/b.img", "settled/c.img"], names()


def streamed_listing(sock, pool_dir, write_timeout):
    """ListVolumes with `more`: every page in one call, the same as page by page; a bad
    filter is an error; a client that never reads its pages holds up nobody and is
    disconnected after the write timeout."""
    c = Client(sock)
    pages = list(c.stream("ListVolumes", {"pool": "test", "limit": 7}))
    paged = [v for p in c.volume_pages("test", limit=7) for v in p]
    assert [v["name"] for p in pages for v in p["volumes"]] == [v["name"] for v in paged]
    assert len(paged) > 14 and all(len(p["volumes"]) <= 7 for p in pages), pages
    assert len(pages) == -(-len(paged) // 7), len(pages)
    assert pages[-1]["next"] is None and all(p["next"] for p in pages[:-1])
    # From a cursor on: the rest only.
    rest = list(c.stream("ListVolumes", {"pool": "test", "limit": 500, "after": paged[9]["address"]}))
    assert [v["name"] for p in rest for v in p["volumes"]] == [v["name"] for v in paged[10:]]
    e = expect_error("io.svirtpool.InvalidArgument",
                     lambda: list(c.stream("ListVolumes", {"pool": "test", "state": "x"})))
    expect_error("io.svirtpool.PoolNotFound", lambda: list(c.stream("ListVolumes", {"pool": "nope"})))
    # The connection is still usable after an error ended the stream.
    assert c.list_pools()[0]["name"] == "test"
    # A client that asks for everything and reads nothing.
    lazy = raw_connect(sock)
    lazy.sendall(b'{"method":"io.svirtpool.ListVolumes","parameters":{"pool":"test","limit":1},"more":true}\0')
    time.sleep(0.5)
    took = served_quickly(sock)
    assert took < 2.0, "a client waited %.2fs beside a stalled listing" % took
    time.sleep(write_timeout + 1.5)
    # What was sent before the agent gave up can still be read; then the end.
    lazy.setblocking(False)
    received = 0
    while True:
        try:
            data = lazy.recv(1 << 20)
        except BlockingIOError:
            raise AssertionError("a stalled listing was not disconnected after the write timeout")
        except ConnectionResetError:
            break
        if not data:
            break
        received += len(data)
    lazy.close()
    print(json.dumps({"pages": len(pages), "served_beside_stalled_s": took, "stalled_got_bytes": received}))


def hidden(sock, pool_dir):
    """A member lists a pool with a directory it may not enter (root's 0700) and one it
    may enter but not read (0711): it sees neither what is inside, nor names, sizes or
    backing chains; root sees all."""
    assert os.getuid() != 0
    for secret in ("private", "searchable"):
        try:
            os.listdir(os.path.join(pool_dir, secret))
            raise AssertionError("this peer can list %s: the test means nothing" % secret)
        except PermissionError:
            pass
    names = [v["name"] for v in Client(sock).list_volumes("test")]
    assert "open.img" in names, names
    leaked = [n for n in names if n.startswith(("private", "searchable"))]
    assert not leaked, "a member saw %s" % leaked
    print(json.dumps({"member_sees": names}))


def oracle(sock, att, secret, rounds):
    """A member swaps a directory of its own for a symlink to a directory it may not
    search (the emulator may), while it asks CheckPath about names in it: the answers
    must never depend on what that directory holds. Its own files are 0600, so the
    emulator can read none of them: any 'read' allowed came from the other directory."""
    rounds = int(rounds)
    real, sw = os.path.join(att, "real"), os.path.join(att, "sw")
    os.mkdir(real)
    for name in ("exists.img", "absent.img"):
        fd = os.open(os.path.join(real, name), os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    stop = threading.Event()
    swaps = [0]

    def flip():
        while not stop.is_set():
            try:
                os.rename(real, sw)
                os.rename(sw, real)
                os.symlink(secret, sw)
                os.unlink(sw)
                swaps[0] += 1
            except OSError:
                pass

    t = threading.Thread(target=flip)
    t.start()
    readable = {"exists.img": 0, "absent.img": 0}
    c = Client(sock)
    try:
        for i in range(rounds):
            name = "exists.img" if i % 2 == 0 else "absent.img"
            check = c.check_path(os.path.join(sw, name))
            last = check["steps"][-1]
            if last["path"].endswith(name) and "read" in last["dac_allowed"]:
                readable[name] += 1
    finally:
        stop.set()
        t.join()
    print(json.dumps({"rounds": rounds, "swaps": swaps[0], "emulator_read_allowed": readable}))
    assert swaps[0] > 100, "the race barely ran"
    assert readable == {"exists.img": 0, "absent.img": 0}, readable


def pools_again(sock, pool_dir, times):
    """A member asks ListPools again and again; after an API mutation of its own the
    count it sees is the new one."""
    c = Client(sock)
    first = c.list_pools()[0]["volumes"]
    for _ in range(int(times)):
        assert c.list_pools()[0]["volumes"] == first
    c.create_volume("test", "made-by-member-%s.img" % times, "raw", 1 << 20)
    after = c.list_pools()[0]["volumes"]
    assert after == first + 1, (first, after)
    print(json.dumps({"volumes": first, "after_create": after}))


def quotas(sock, pool_dir):
    """A member creates and imports volumes (api.max_volumes_per_user = 3,
    api.max_volume_bytes_per_user = 4 MiB): past either limit it is refused, nothing is
    left behind, and what it made is its own."""
    c = Client(sock)
    mib = 1 << 20
    c.create_volume("test", "a.img", "raw", mib)
    c.create_volume("test", "b.img", "raw", mib)
    e = expect_error("io.svirtpool.Refused", c.create_volume, "test", "big.img", "raw", 4 * mib)
    assert "max_volume_bytes_per_user" in e.parameters["reason"], e
    c.create_volume("test", "c.img", "raw", mib)
    e = expect_error("io.svirtpool.Refused", c.create_volume, "test", "d.img", "raw", mib)
    assert "max_volumes_per_user" in e.parameters["reason"], e
    r, w = os.pipe()
    os.write(w, b"iso")
    os.close(w)
    e = expect_error("io.svirtpool.Refused", c.import_fd, r, "test", "e.iso")
    os.close(r)
    for name in ("big.img", "d.img", "e.iso"):
        assert not os.path.exists(os.path.join(pool_dir, name)), name
    for name in ("a.img", "b.img", "c.img"):
        assert os.stat(os.path.join(pool_dir, name)).st_uid == os.getuid(), name
    print(json.dumps({"made": ["a.img", "b.img", "c.img"], "refused": ["big.img", "d.img", "e.iso"]}))


def reserve(sock, pool_dir):
    """A member may not take the last blocks of a pool's filesystem (api.reserve_percent)."""
    c = Client(sock)
    e = expect_error("io.svirtpool.Refused", c.create_volume, "test", "last.img", "raw", 1 << 20)
    assert "reserve_percent" in e.parameters["reason"], e
    assert not os.path.exists(os.path.join(pool_dir, "last.img"))
    print(json.dumps({"refused": e.parameters["reason"]}))


def pin(sock, pool_dir):
    """A member holds files of root's that it can only read: one attached ro, one as
    the base of an overlay of its own attached rw."""
    c = Client(sock)
    guest = "6f7a1c2e-0f4b-4d1e-9a57-3c1d2b8e9f0a"
    c.define_guest(guest, "pinner")
    c.attach(guest, os.path.join(pool_dir, "shared.img"), "ro")
    c.create_volume("test", "over.qcow2", "qcow2", backing="base.qcow2")
    c.attach(guest, os.path.join(pool_dir, "over.qcow2"), "rw")
    print(json.dumps({"guest": guest}))


def hung_path(sock, path, per_user):
    """A member asks CheckPath about a path inside a filesystem that never answers, again
    and again: each call is answered Failed after the call timeout, its stuck thread
    counts against the member until it returns, and past the member's limit new calls
    are refused at once. Root is served throughout."""
    per_user = int(per_user)
    answers = []
    for i in range(per_user + 2):
        started = time.monotonic()
        try:
            with Client(sock, timeout=60) as c:
                c.check_path(path)
            raise AssertionError("CheckPath into a hung mount answered a check")
        except VarlinkError as e:
            answers.append((e.name, round(time.monotonic() - started, 1)))
    failed = [a for a in answers if a[0] == "io.svirtpool.Failed"]
    refused = [a for a in answers if a[0] == "io.svirtpool.Refused"]
    assert len(failed) == per_user, answers
    assert len(refused) == 2 and all(a[1] < 1.0 for a in refused), answers
    assert all(a[1] < 10.0 for a in failed), answers
    print(json.dumps({"answers": answers}))


def main():
    scenario, sock, *args = sys.argv[1:]
    {
        "every-method": every_method,
        "member": member,
        "outsider": outsider,
        "deputy": deputy,
        "hogs": hogs,
        "endless-pipe": endless_pipe,
        "hung-path": hung_path,
        "hidden": hidden,
        "pin": pin,
        "quotas": quotas,
        "reserve": reserve,
        "pools-again": pools_again,
        "oracle": oracle,
        "bounds": bounds,
        "odd-names": odd_names,
        "listing-is-current": listing_is_current,
        "streamed-listing": lambda s, d, t: streamed_listing(s, d, float(t)),
        "abuse": lambda s, t: abuse(s, float(t)),
        "monitor": monitor,
        "revoked": revoked,
    }[scenario](sock, *args)
    print("scenario %s: ok" % scenario)


if __name__ == "__main__":
    main()
