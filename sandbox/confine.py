"""The Landlock tier's pre-exec launcher: confine this process, then exec the submission.

For hosts where namespaces cannot be created (an unprivileged container, the usual RunPod host),
so bubblewrap cannot build a private view. Run as `python -I confine.py SPEC_JSON -- CMD...`
by the validator's own interpreter (which has `landlock` and `pyseccomp`); the restrictions
survive exec and bind every descendant (CMD is `setpriv` when the validator is root, which drops
to the sandbox uid as in the bwrap tier):

1. Landlock: the filesystem is limited to the spec's paths (read/exec, read, write, devices);
   from ABI 4 no TCP bind/connect; from ABI 6 no signals to and no abstract unix sockets of
   processes outside the sandbox.
2. seccomp: `socket()` of any family but AF_UNIX fails with EPERM (no AF_INET, AF_INET6,
   AF_NETLINK, AF_PACKET...), as do ptrace, process_vm_readv/writev and io_uring (which can
   open sockets without the socket syscall).

`--probe` confines itself the same way and checks that an inet socket is refused: exit 0 means
this tier works here. Self-contained: runs before anything of edgemaxx could be imported.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import sys
from typing import Any

_LANDLOCK_CREATE_RULESET, _LANDLOCK_RESTRICT_SELF = 444, 446
_ACCESS_NET_BIND_TCP, _ACCESS_NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1, 2
DENIED_SYSCALLS = ("ptrace", "process_vm_readv", "process_vm_writev",
                   "io_uring_setup", "io_uring_enter", "io_uring_register")


class _NetScopeAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


def _landlock_filesystem(spec: dict[str, list[str]], abi: int) -> None:
    from landlock import FSAccess, Ruleset

    ruleset = Ruleset()
    read = FSAccess.READ_FILE | FSAccess.READ_DIR
    device = FSAccess.READ_FILE | FSAccess.WRITE_FILE | (FSAccess.IOCTL_DEV if abi >= 5 else 0)
    rules = (("read_exec", read | FSAccess.EXECUTE), ("read", read), ("write", FSAccess.all()),
             ("devices", device))
    for key, access in rules:
        for path in spec.get(key, []):
            if not os.path.exists(path):
                continue
            if not os.path.isdir(path):
                access = access & FSAccess.all_file()
            ruleset.allow(path, rules=access)
    ruleset.apply()  # sets no_new_privs, then landlock_restrict_self


def _landlock_network_and_scope(abi: int) -> None:
    """A second, stacked domain for what the `landlock` package does not cover yet."""
    net = (_ACCESS_NET_BIND_TCP | _ACCESS_NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    if not (net or scoped):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    attr = _NetScopeAttr(0, net, scoped)
    size = ctypes.sizeof(attr) if scoped else 16  # ABI 4/5 kernels know only the first two fields
    fd = libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset (network, scope)")
    try:
        if libc.syscall(_LANDLOCK_RESTRICT_SELF, fd, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self (network, scope)")
    finally:
        os.close(fd)


def _seccomp() -> None:
    import pyseccomp as seccomp  # imported (and libseccomp loaded) before Landlock, in confine()

    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    rules.add_rule(seccomp.ERRNO(errno.EPERM), "socket", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    for name in DENIED_SYSCALLS:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
    rules.load()  # other architectures' syscalls (int 0x80 socketcall) are killed by default


def confine(spec: dict[str, list[str]]) -> int:
    """Apply every restriction to this process; returns the Landlock ABI."""
    # Everything this needs is loaded before the filesystem closes.
    import pyseccomp  # noqa: F401
    from landlock import landlock_abi_version

    abi = int(landlock_abi_version())
    _landlock_filesystem(spec, abi)
    _landlock_network_and_scope(abi)
    _seccomp()
    return abi


def _probe() -> int:
    """Confine this process and check the network is gone and the filesystem limited."""
    abi = confine({"read_exec": ["/usr"]})
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
        print("an inet socket was still allowed", file=sys.stderr)
        return 1
    except PermissionError:
        pass
    try:
        os.listdir("/etc")
        print("/etc was still readable", file=sys.stderr)
        return 1
    except PermissionError:
        pass
    print(json.dumps({"landlock_abi": abi}))
    return 0


def main(argv: list[str]) -> Any:
    if argv[1:2] == ["--probe"]:
        return _probe()
    if len(argv) < 4 or argv[2] != "--":
        print("usage: confine.py SPEC_JSON -- COMMAND...", file=sys.stderr)
        return 2
    spec, command = json.loads(argv[1]), argv[3:]
    try:
        confine(spec)
    except (ImportError, OSError) as exc:
        print(f"edgemaxx: cannot confine the sandbox: {exc}", file=sys.stderr)
        return 125
    os.execvpe(command[0], command, os.environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
