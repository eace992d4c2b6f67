"""Zero-copy verified loads: the file's page cache mapped, writers held off by a read lease.

A private copy of the weights (``memory="copy"``, the default) costs a kernel
zero-fill and a copy of every byte, which on a small machine takes about as
long as hashing them. Mapping the file instead gives the runtime the very
page-cache pages that were hashed, and several processes share them, but it is
only safe while nothing can change those pages. A Linux read lease provides
that on a local filesystem: taking it fails while any process has the file
open for writing, and while it is held the kernel holds back every open for
writing and every ``truncate()`` (for up to ``/proc/sys/fs/lease-break-time``
seconds) and tells the holder. A keeper thread watches the leases; when one is
being broken it copies the region into private memory at the same address
(``mremap``) and only then releases the lease, so the writer goes on and the
runtime's bytes stay the verified ones. The copy is paid only when someone
tries to write.

One truncation a lease does not hold back: ``open(path, O_RDONLY | O_TRUNC)``.
So only files no one but the owner may write are mapped, and if the file
shrinks anyway the region is made inaccessible and ``is_guarded`` says False:
the weights can be lost (the process faults), never replaced.

Why these filesystems only: on NFS, FUSE, overlay and the like, the bytes can
change without a local open for writing (another client, a FUSE server, a
lower layer), which no lease sees.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import signal
import stat
import sys
import threading
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..codes import Code
from ..errors import DiscoveryError, ModelsignWarning

if sys.platform == "win32":  # no leases: map_leased says so before any use
    fcntl: Any = None
else:
    import fcntl

#: Filesystems whose pages change only through this kernel's opens and truncations.
LEASE_SAFE_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs"})
#: Files below this size are copied: mapping them saves nothing.
MIN_MAPPED = 1 << 20
POLL = 0.02  # seconds between lease checks: the longest a writer waits before the copy starts
_COPY_CHUNK = 64 << 20
_MADV_POPULATE_READ = 22  # Linux 5.14
_MREMAP_MAYMOVE, _MREMAP_FIXED = 1, 2
_MAP_FIXED, _PROT_NONE = 0x10, 0  # not in the mmap module
# The lease-break signal. SIGURG is ignored by default, so a break never kills
# the process; the keeper polls the lease instead of handling the signal,
# which only the main thread could do.
_SIGNAL = getattr(signal, "SIGURG", None)


class Unavailable(Exception):
    """The file cannot be mapped safely here; the message says why."""


@dataclass
class _Region:
    name: str
    fd: int  # holds the lease; closed once the region is private or gone
    addr: int
    size: int
    owner: weakref.ref[Any]
    stamp: tuple[int, int]  # (size, mtime) when the lease was taken
    leased: bool = True
    guarded: bool = True


class _Keeper:
    """Polls the leases of live mapped regions; privatizes a region whose lease is being broken."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.regions: dict[int, _Region] = {}
        self.thread: threading.Thread | None = None
        self.break_time = _lease_break_time()
        # A forked child shares the parent's lease, which the parent releases
        # after copying only its own pages: the child takes a lease of its own.
        os.register_at_fork(
            before=self._fork_before,
            after_in_parent=self._fork_after_in_parent,
            after_in_child=self._fork_after_in_child,
        )

    def _fork_before(self) -> None:
        self.lock.acquire()

    def _fork_after_in_parent(self) -> None:
        self.lock.release()

    def _fork_after_in_child(self) -> None:
        self.lock = threading.Lock()  # the copied one is held
        self.thread = None
        inherited, self.regions = self.regions, {}
        for region in inherited.values():
            parent_fd = region.fd
            if parent_fd < 0:  # already unguarded in the parent
                self.regions[region.addr] = region
                continue
            try:
                # A new open file description of the same inode, even if unlinked.
                region.fd = os.open(f"/proc/self/fd/{parent_fd}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                region.fd = -1
            finally:
                os.close(parent_fd)  # only this process's reference; the parent keeps its lease
            try:
                if region.fd < 0:
                    raise Unavailable("cannot reopen the file")
                _take_lease(region.fd)
            except Unavailable:
                # A break is under way: copy now, and say so if a write got in first.
                region.leased = False
                self.regions[region.addr] = region
                self._privatize(region, check_stamp=True)
                continue
            self.add(region)

    def add(self, region: _Region) -> None:
        with self.lock:
            self.regions[region.addr] = region
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="modelsign-lease-keeper", daemon=True
                )
                self.thread.start()

    def drop(self, addr: int) -> None:
        """The owner is gone (its mapping is unmapped next): release the lease."""
        with self.lock:
            region = self.regions.pop(addr, None)
            if region is not None and region.fd >= 0:
                os.close(region.fd)

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(POLL)
            now = time.monotonic()
            with self.lock:
                if not self.regions:
                    self.thread = None
                    return
                regions = list(self.regions.values())
                late = now - last >= self.break_time
                for region in regions:
                    if late and region.guarded:
                        # Starved for longer than the kernel holds a writer: a
                        # write may have gone through unseen.
                        region.guarded = False
                        _warn(
                            f"{region.name}: the lease keeper did not run for {now - last:.0f} s "
                            f"(longer than the {self.break_time} s lease-break time); "
                            "the mapped weights are no longer guaranteed"
                        )
                    if region.fd < 0:
                        continue
                    # Size first: after a truncation no page is left to copy out.
                    if os.fstat(region.fd).st_size != region.size:
                        self._truncated(region)
                    elif fcntl.fcntl(region.fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK:
                        self._privatize(region)
            last = now

    def _truncated(self, region: _Region) -> None:
        """The file shrank under the lease (an O_TRUNC open for reading does not break it).

        The kernel has taken the pages; nothing can bring the verified bytes
        back. The region is made inaccessible before the lease goes, so bytes
        written later can never show through: an access faults instead.
        """
        if region.guarded:
            region.guarded = False
            _warn(
                f"{region.name} was truncated while mapped (an open with O_TRUNC, which a "
                "lease does not hold back): the mapped weights are gone, and touching "
                "them stops the process"
            )
        try:
            _make_inaccessible(region.addr, region.size)
        except OSError:
            return  # keep the lease: writers stay held off; retried at the next poll
        if region.leased:
            fcntl.fcntl(region.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
            region.leased = False
        os.close(region.fd)
        region.fd = -1  # kept only so is_guarded can tell

    def _privatize(self, region: _Region, check_stamp: bool = False) -> None:
        owner = region.owner()  # keeps the mapping alive while it is swapped
        if owner is None:
            return
        try:
            _copy_in_place(region.addr, region.size)
        except OSError as exc:
            if region.guarded:
                region.guarded = False
                _warn(
                    f"{region.name}: a process opened it for writing and the mapped weights "
                    f"could not be copied out ({exc.strerror}); they can change once the "
                    "kernel lets the writer go"
                )
            return
        if region.fd >= 0:
            if check_stamp and _stamp(region.fd) != region.stamp and region.guarded:
                region.guarded = False
                _warn(f"{region.name} was written to while this process was forked")
            if region.leased:
                fcntl.fcntl(region.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)  # lets the writer go
                region.leased = False
            os.close(region.fd)
        if region.guarded:
            del self.regions[region.addr]  # private memory now: nothing left to watch
        else:
            region.fd = -1  # kept only so is_guarded can tell
        del owner


def _warn(text: str) -> None:
    warnings.warn(f"modelsign: {text}", ModelsignWarning, stacklevel=2)


def _lease_break_time() -> float:
    try:
        with open("/proc/sys/fs/lease-break-time", encoding="ascii") as fh:
            return float(fh.read().strip())
    except (OSError, ValueError):
        return 45.0  # the kernel's default


_KEEPER: _Keeper | None = None
_KEEPER_LOCK = threading.Lock()


def _keeper() -> _Keeper:
    global _KEEPER
    with _KEEPER_LOCK:
        if _KEEPER is None:
            _KEEPER = _Keeper()
        return _KEEPER


class _Libc:
    """The few libc calls Python's ``mmap`` module does not offer (ctypes releases the GIL)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        vp, size_t, cint = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        self.mmap = libc.mmap
        self.mmap.restype, self.mmap.argtypes = vp, [vp, size_t, cint, cint, cint, ctypes.c_long]
        self.munmap = libc.munmap
        self.munmap.restype, self.munmap.argtypes = cint, [vp, size_t]
        self.mremap = libc.mremap
        self.mremap.restype, self.mremap.argtypes = vp, [vp, size_t, size_t, cint, vp]
        self.madvise = libc.madvise
        self.madvise.restype, self.madvise.argtypes = cint, [vp, size_t, cint]
        self.failed = ctypes.c_void_p(-1).value


_LIBC: _Libc | None = None


def _libc() -> _Libc:
    global _LIBC
    if _LIBC is None:
        _LIBC = _Libc()
    return _LIBC


def _copy_in_place(addr: int, size: int) -> None:
    """Replace the pages at ``addr`` with a private copy of their bytes, at the same address."""
    libc = _libc()
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    new = libc.mmap(None, size, prot, flags, -1, 0)
    if new is None or new == libc.failed:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))

    def copy(a: int) -> None:
        ctypes.memmove(new + a, addr + a, min(_COPY_CHUNK, size - a))

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(copy, range(0, size, _COPY_CHUNK)))
    moved = libc.mremap(new, size, size, _MREMAP_MAYMOVE | _MREMAP_FIXED, addr)
    if moved != addr:
        err = ctypes.get_errno()
        libc.munmap(new, size)
        raise OSError(err, os.strerror(err))


def _make_inaccessible(addr: int, size: int) -> None:
    """Replace the pages at ``addr`` with a mapping that faults on any access."""
    libc = _libc()
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED
    if libc.mmap(addr, size, _PROT_NONE, flags, -1, 0) != addr:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def filesystem_of(st_dev: int) -> str | None:
    """The filesystem type mounted on device ``st_dev``, from ``/proc/self/mountinfo``."""
    want = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 2 and fields[2] == want and " - " in line:
                    return line.split(" - ", 1)[1].split()[0]
    except OSError:
        return None
    return None


def map_leased(fd: int, name: str) -> Any:
    """The file behind ``fd`` mapped privately, under a read lease: a numpy ``uint8`` array.

    Raises :class:`Unavailable` when the mapping cannot be kept safe: not
    Linux, a filesystem outside :data:`LEASE_SAFE_FILESYSTEMS`, the file open
    for writing elsewhere, no right to a lease (not the file's owner and no
    ``CAP_LEASE``), or the lease-break signal taken by the application.
    """
    import numpy as np

    if not sys.platform.startswith("linux") or _SIGNAL is None:
        raise Unavailable("mapped loading needs Linux file leases")
    fs = filesystem_of(os.fstat(fd).st_dev)
    if fs not in LEASE_SAFE_FILESYSTEMS:
        raise Unavailable(
            f"{fs or 'an unknown'} filesystem: its pages can change without a local writer "
            f"(mapped loading supports {', '.join(sorted(LEASE_SAFE_FILESYSTEMS))})"
        )
    if signal.getsignal(_SIGNAL) not in (signal.SIG_DFL, signal.SIG_IGN):
        raise Unavailable("the application handles SIGURG, which lease breaks are sent as")
    _check_writers(fd)
    lease_fd = os.dup(fd)
    try:
        _take_lease(lease_fd)
        # The size under the lease: from here on it cannot change unseen.
        size = os.fstat(lease_fd).st_size
        if size == 0:
            raise Unavailable("an empty file has nothing to map")
        mapping = mmap.mmap(lease_fd, size, flags=mmap.MAP_PRIVATE)
    except BaseException:
        os.close(lease_fd)
        raise
    arr = np.frombuffer(mapping, dtype=np.uint8)
    addr = int(arr.__array_interface__["data"][0])
    keeper = _keeper()
    keeper.add(_Region(name, lease_fd, addr, size, weakref.ref(arr), _stamp(lease_fd)))
    weakref.finalize(arr, keeper.drop, addr)
    return arr


def _check_writers(fd: int) -> None:
    """Only the owner (and root) may write the file.

    Whoever may write it can truncate it past a read lease (``open(path,
    O_RDONLY | O_TRUNC)`` does not break one), so a file others can write is
    not mapped. The owner and root could as well signal or trace this process.
    """
    mode = os.fstat(fd).st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise Unavailable(
            f"the file is writable by its group or others (mode {stat.S_IMODE(mode):o}), "
            "and whoever can write it can truncate it past a lease"
        )
    try:
        os.getxattr(fd, "system.posix_acl_access")
    except OSError:
        return  # no access ACL (ENODATA), or none possible here
    raise Unavailable(
        "the file has an access ACL, which may let others write it, and whoever can write "
        "it can truncate it past a lease"
    )


def _take_lease(fd: int) -> None:
    """A read lease on ``fd``, its breaks signalled with SIGURG; Unavailable says why not."""
    assert _SIGNAL is not None
    fcntl.fcntl(fd, fcntl.F_SETSIG, _SIGNAL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        reason = {
            errno.EAGAIN: "another process has the file open for writing",
            errno.EACCES: "only the file's owner (or CAP_LEASE) can take a lease",
            errno.EPERM: "only the file's owner (or CAP_LEASE) can take a lease",
        }.get(exc.errno or 0, f"the filesystem refused a lease ({exc.strerror})")
        raise Unavailable(reason) from exc


def _stamp(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_size, st.st_mtime_ns


def populate(arr: Any, start: int, end: int) -> None:
    """Map the pages of ``arr[start:end]`` ahead of hashing them (a hint; old kernels lack it)."""
    libc = _libc()
    base = int(arr.__array_interface__["data"][0])
    page = mmap.PAGESIZE
    a = start - start % page
    if libc.madvise(base + a, end - a, _MADV_POPULATE_READ) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            # EFAULT/EIO: pages past the end of a file that shrank, or a read error.
            raise DiscoveryError(
                f"the mapped file cannot be read at byte {a}: {os.strerror(err)}",
                code=Code.FILE_CHANGED,
            )


def is_guarded(arr: Any) -> bool:
    """Whether ``arr`` (a tensor or array from a mapped load) still holds the verified bytes.

    True for memory that is not (or no longer) a leased mapping: a private
    copy cannot change behind the process's back.
    """
    if hasattr(arr, "data_ptr"):  # a torch tensor
        ptr = int(arr.data_ptr())
    else:
        import numpy as np

        ptr = int(np.asarray(arr).__array_interface__["data"][0])
    keeper = _keeper()
    with keeper.lock:
        for region in keeper.regions.values():
            if region.addr <= ptr < region.addr + max(region.size, 1):
                # Not only the keeper's verdict: a truncation it has not polled yet counts.
                if region.guarded and region.fd >= 0:
                    return os.fstat(region.fd).st_size == region.size
                return region.guarded
    return True
