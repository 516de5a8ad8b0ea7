"""A small client for svirt-pool's varlink API (io.svirtpool), standard library only.

Meant to be imported by a virt-manager storage backend, a libvirt hook or a script:

    import svirtpool
    c = svirtpool.Client()                      # /run/svirt-pool/io.svirtpool.sock
    for pool in c.list_pools():
        print(pool["name"], pool["location"])
    c.import_file("/home/me/Downloads/debian.iso", pool="default", name="debian.iso")

Files are passed as open descriptors (SCM_RIGHTS): the client opens them with its own
rights, so the root agent never opens a path on a user's behalf.
"""

import json
import os
import socket

DEFAULT_SOCKET = "/run/svirt-pool/io.svirtpool.sock"
INTERFACE = "io.svirtpool"
_MAX_FDS = 16


class VarlinkError(Exception):
    """An error reply: `name` is e.g. 'io.svirtpool.GuestNotFound', `parameters` its fields."""

    def __init__(self, name, parameters):
        super().__init__("%s: %s" % (name, json.dumps(parameters, sort_keys=True)))
        self.name = name
        self.parameters = parameters or {}


class Client:
    """One connection to the agent. Not thread-safe; open one per thread."""

    def __init__(self, path=None, timeout=60.0):
        self.path = path or os.environ.get("SVIRT_POOL_SOCKET", DEFAULT_SOCKET)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(self.path)
        self._buf = b""
        self._fds = []

    def close(self):
        self.sock.close()
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the protocol --------------------------------------------------------------

    def _send(self, method, parameters, fds=(), more=False):
        msg = {"method": method, "parameters": parameters or {}}
        if more:
            msg["more"] = True
        data = json.dumps(msg).encode() + b"\0"
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.sendall(data)

    def _receive(self):
        """One reply message and the descriptors that came with the data read so far."""
        while b"\0" not in self._buf:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, _MAX_FDS)
            if not data:
                raise ConnectionError("the agent closed the connection")
            self._buf += data
            self._fds.extend(fds)
        raw, self._buf = self._buf.split(b"\0", 1)
        reply = json.loads(raw)
        fds, self._fds = self._fds, []
        if "error" in reply:
            for fd in fds:
                os.close(fd)
            raise VarlinkError(reply["error"], reply.get("parameters"))
        return reply, fds

    def call(self, method, parameters=None, fds=()):
        """Calls `method` (e.g. 'ListPools' or a full 'org.varlink.service.GetInfo') and
        returns (reply parameters, received descriptors)."""
        if "." not in method:
            method = INTERFACE + "." + method
        self._send(method, parameters, fds)
        reply, received = self._receive()
        return reply.get("parameters", {}), received

    def stream(self, method, parameters=None):
        """Calls a method with the `more` flag and yields each reply's parameters."""
        if "." not in method:
            method = INTERFACE + "." + method
        self._send(method, parameters, more=True)
        while True:
            reply, fds = self._receive()
            for fd in fds:
                os.close(fd)
            yield reply.get("parameters", {})
            if not reply.get("continues"):
                return

    # -- io.svirtpool --------------------------------------------------------------

    def list_pools(self):
        return self.call("ListPools")[0]["pools"]

    def list_volumes(self, pool, prefix=None, format=None, state=None):
        """Every volume of `pool` in name order (optionally only names starting with
        `prefix`, of `format`, in `state`), in one call: the agent streams the pages."""
        return [v for page in self.stream("ListVolumes", _volume_params(pool, None, prefix, format, state))
                for v in page["volumes"]]

    def volume_pages(self, pool, limit=None, prefix=None, format=None, state=None):
        """Yields the volumes of `pool` one page (a list) at a time, each page asked for
        when the last is used: each page costs the same however far into the pool it is."""
        params = _volume_params(pool, limit, prefix, format, state)
        while True:
            page = self.call("ListVolumes", params)[0]
            yield page["volumes"]
            if page.get("next") is None:
                return
            params["after"] = page["next"]

    def create_volume(self, pool, name, format="qcow2", capacity=None, backing=None):
        """Creates a volume (raw or qcow2; an overlay on `backing`, a volume of the same
        pool) owned by this process's user; returns {volume, label, note}."""
        params = {"pool": pool, "name": name, "format": format}
        if capacity is not None:
            params["capacity"] = capacity
        if backing is not None:
            params["backing"] = backing
        return self.call("CreateVolume", params)[0]["result"]

    def delete_volume(self, pool, name):
        """Deletes a volume (its path below the pool root) as this process's user could."""
        self.call("DeleteVolume", {"pool": pool, "name": name})

    def check_path(self, path, guest=None):
        """Whether the emulator can reach `path`: DAC and SELinux per component, the
        first that blocks (`blocked_at`, `reason`) and the `fix` to suggest."""
        params = {"path": path}
        if guest is not None:
            params["guest"] = guest
        return self.call("CheckPath", params)[0]["check"]

    def define_guest(self, uuid, name=None):
        params = {"uuid": uuid}
        if name is not None:
            params["name"] = name
        return self.call("DefineGuest", params)[0]["guest"]

    def undefine_guest(self, uuid, force=False):
        return self.call("UndefineGuest", {"uuid": uuid, "force": force})[0]["released"]

    def get_guest(self, uuid):
        return self.call("GetGuest", {"uuid": uuid})[0]

    def list_guests(self):
        """Every guest (in UUID order), fetching page after page."""
        guests, after = [], None
        while True:
            page = self.call("ListGuests", {} if after is None else {"after": after})[0]
            guests.extend(page["guests"])
            after = page.get("next")
            if after is None:
                return guests

    def attach(self, guest, volume, mode):
        return self.call("Attach", {"guest": guest, "volume": volume, "mode": mode})[0]["result"]

    def detach(self, guest, volume):
        return self.call("Detach", {"guest": guest, "volume": volume})[0]["result"]

    def release(self, guest):
        return self.call("Release", {"guest": guest})[0]["released"]

    def import_file(self, path, pool, name=None):
        """Opens `path` with this process's rights and has the agent copy it into `pool`."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return self.import_fd(fd, pool, name or os.path.basename(path))
        finally:
            os.close(fd)

    def import_fd(self, fd, pool, name):
        return self.call("Import", {"pool": pool, "name": name}, fds=[fd])[0]["result"]

    def create_save_image(self, guest, pool, name):
        """Returns (result, fd): the new save image, open read-write; close the fd."""
        params, fds = self.call("CreateSaveImage", {"guest": guest, "pool": pool, "name": name})
        return params["result"], _one(fds)

    def open_volume(self, guest, volume, mode):
        """Attaches and returns (result, fd): read-only for 'ro'; close the fd."""
        params, fds = self.call("Open", {"guest": guest, "volume": volume, "mode": mode})
        return params["result"], _one(fds)

    def monitor(self):
        """Yields each change event ({kind, pool, volume, label}) as it happens."""
        for reply in self.stream("Monitor"):
            yield reply["event"]


def _one(fds):
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise ConnectionError("expected one descriptor, got %d" % len(fds))
    return fds[0]


def _volume_params(pool, limit, prefix, format, state):
    """ListVolumes parameters, leaving out those not given."""
    params = {"pool": pool}
    for key, value in (("limit", limit), ("prefix", prefix), ("format", format), ("state", state)):
        if value is not None:
            params[key] = value
    return params
