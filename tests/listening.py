"""The TCP sockets the processes under one process listen on, read from Linux's /proc (no psutil): each
process's socket inodes from /proc/PID/fd, matched with the listening rows of /proc/net/tcp and tcp6.

``python -m tests.listening`` starts Ray as the study does (`study.cluster.connect`), runs a task so a
worker starts, and prints as JSON every socket its Ray processes listen on, the node's address and the
authentication mode Ray set, for tests/test_connect.py.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:  # ended meanwhile
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A /proc/net/tcp address: 32-bit words in the host's (little-endian) byte order."""
    raw = bytes.fromhex(hex_address)
    host = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(host)


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """127.0.0.0/8, ::1, or an IPv4 loopback address mapped into IPv6 (::ffff:127.0.0.1)."""
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def listening(pids: list[int]) -> list[dict[str, str | int]]:
    """The listening TCP sockets of `pids`: address, port, and the process's name."""
    owners: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners[target[len("socket:[") : -1]] = pid
        except OSError:
            continue
    sockets = []
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == LISTEN and fields[9] in owners:
                pid = owners[fields[9]]
                address, port = fields[1].split(":")
                name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                sockets.append({"address": str(_address(address)), "port": int(port, 16), "process": name})
    return sockets


def _pid() -> int:
    return os.getpid()


def main() -> None:
    import ray

    from study.cluster import connect

    assert connect(None)
    ray.get(ray.remote(_pid).remote())  # a worker process starts and listens too
    me = os.getpid()
    report = {
        "sockets": listening([me, *descendants(me)]),
        "node": ray.nodes()[0]["NodeManagerAddress"],
        "auth_mode": os.environ.get("RAY_AUTH_MODE"),
    }
    ray.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
