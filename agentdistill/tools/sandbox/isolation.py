"""Kernel-enforced isolation layers for sandbox workers, and the report of which ones are active.

Layers (each applied when this machine allows it; `IsolationReport` says which are on):
  server  - network namespace (no interface but a down loopback) and a private /proc with hidepid=2,
            entered once by the fork server so every worker inherits them
  uid     - a non-root uid/gid per episode family (needs root); RLIMIT_NPROC then counts only its processes
  rlimits - address space, CPU seconds, file size, processes, open files, no core dumps
  episode - a cgroup for the family's memory and processes (cgroups.py) and a tmpfs with a size and a file
            count for its folder (needs root: mounted in the fork server's mount namespace)
  landlock- file system: read-only Python/system libraries, read-write only the episode's own folder; no TCP;
            no signals or abstract unix sockets outside the episode (Linux >= 5.13; scopes >= 6.12). Each
            fork adds a nested domain of its own (see worker.py), so forks cannot reach each other
  seccomp - system call allowlist (pyseccomp/libseccomp): no exec, no socket(), no ptrace, no mount, no
            threads, ...; a step child also refuses itself signals to its holder (syscalls.holder_guard)
  env     - environment scrubbed to a few harmless variables

The order in `enter_worker` matters: limits and identity while still root, then no_new_privs, Landlock,
and seccomp last (it forbids the calls the earlier layers need).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import resource
import signal
import sys
import sysconfig

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE = 1, 38, 36, 4
CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUSER = 0x00020000, 0x40000000, 0x10000000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x4000, 1 << 18, 2, 4, 8
MS_BIND, MS_MOVE = 4096, 8192
MNT_DETACH = 2


@dataclasses.dataclass
class IsolationReport:
    """Which isolation layers protect an episode. `level` is "full", "partial" or "none"."""

    uid: int | None = None  # the episode's uid when it runs as a non-root user of its own
    rlimits: bool = False
    network_namespace: bool = False
    proc_hidden: bool = False
    landlock_abi: int = 0  # 0: Landlock not applied
    seccomp: bool = False
    threads_refused: bool = False  # seccomp refuses clone(CLONE_THREAD)
    holder_guard: bool = False  # a step's code cannot signal the process that holds the state before it
    own_domain: bool = False  # own Landlock domain: cannot signal or reach the folders of its parent, siblings
    fork_depth: int = 0  # 0 for an episode, 1 for its forks, 2 for theirs, ...
    episode_memory_mb: int | None = None  # cgroup: memory of the episode and all its forks together
    episode_processes: int | None = None  # cgroup: processes of the episode and all its forks together
    max_disk_mb: int | None = None  # the family's folder is a tmpfs of this size...
    max_files: int | None = None  # ...holding at most this many files and folders
    env_scrubbed: bool = False
    missing: list = dataclasses.field(default_factory=list)  # layers this machine could not enforce, and why

    @property
    def level(self) -> str:
        layers = [self.uid is not None, self.rlimits, self.network_namespace, self.landlock_abi > 0, self.seccomp]
        limits = [self.own_domain, self.episode_processes is not None, self.max_files is not None]  # on top
        return "full" if all(layers + limits) else ("partial" if any(layers) else "none")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["level"] = self.level
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "IsolationReport":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


def prctl(option: int, arg: int = 0) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare({flags:#x}): {os.strerror(err)}")


# -- fork-server level: namespaces shared by all workers ---------------------------------------------------
def enter_server_namespaces(report: IsolationReport, ro_paths: list[str], staging: str) -> None:
    """No network for anything forked from here; a /proc that hides other users' processes; the
    read-only paths reachable for episode uids even below a private folder such as /root (0700)."""
    is_root = os.geteuid() == 0
    try:
        if not is_root:  # an unprivileged user namespace gives us the right to make a network namespace
            uid, gid = os.getuid(), os.getgid()
            unshare(CLONE_NEWUSER)
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        unshare(CLONE_NEWNET)
        report.network_namespace = True
    except OSError as e:
        report.missing.append(f"network namespace: {e.strerror or e}")
    if not is_root:
        report.missing.append("private /proc: needs root")
        return
    try:
        unshare(CLONE_NEWNS)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
        report.proc_hidden = True
    except OSError as e:
        report.missing.append(f"private /proc: {e.strerror or e}")
        return
    try:
        expose_paths(ro_paths, staging)
    except OSError as e:
        report.missing.append(f"exposing {ro_paths}: {e}")


def _blocking_ancestor(path: str) -> str | None:
    """The highest folder above `path` that other users cannot traverse (e.g. /root, mode 0700)."""
    parts = os.path.abspath(path).split("/")[1:-1]
    cur = ""
    for part in parts:
        cur += "/" + part
        if not os.stat(cur).st_mode & 0o001:
            return cur
    return None


def expose_paths(paths: list[str], staging: str) -> None:
    """In our private mount namespace: cover each blocking ancestor with an empty tmpfs (hiding the rest
    of it) and bind the needed paths back in at their own location. The host's view is unchanged."""
    by_ancestor: dict[str, list[str]] = {}
    for p in paths:
        anc = _blocking_ancestor(p)
        if anc:
            by_ancestor.setdefault(anc, []).append(p)
    os.makedirs(staging, mode=0o700, exist_ok=True)
    for anc, ps in by_ancestor.items():
        ps = [p for p in ps if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in ps)]
        staged = []
        for i, p in enumerate(sorted(set(ps))):
            s = os.path.join(staging, f"s{len(os.listdir(staging))}")
            if os.path.isdir(p):
                os.mkdir(s)
            else:
                open(s, "w").close()
            _mount(p, s, None, MS_BIND | MS_REC)
            staged.append((p, s))
        _mount("tmpfs", anc, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        old = os.umask(0o022)
        try:
            for p, s in staged:
                os.makedirs(os.path.dirname(p), mode=0o755, exist_ok=True)
                if os.path.isdir(s):
                    os.makedirs(p, mode=0o755, exist_ok=True)
                else:
                    open(p, "w").close()
                _mount(s, p, None, MS_MOVE)
        finally:
            os.umask(old)


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def mount_quota(path: str, size_mb: int, files: int, uid: int | None) -> None:
    """A tmpfs at `path` (in the caller's mount namespace): at most `size_mb` MB and `files` inodes."""
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    options = f"size={int(size_mb)}m,nr_inodes={int(files)},mode=0700{owner}"
    _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)


def unmount(path: str) -> None:
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {path}: {os.strerror(err)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# -- worker level ----------------------------------------------------------------------------------------
def enter_worker(cfg: dict, keep_fd: int, report: IsolationReport, seccomp_filter) -> None:
    """Apply every per-episode layer to the calling (freshly forked, still privileged) process."""
    _hygiene(keep_fd)
    os.chdir(cfg["workdir"])
    if cfg.get("cgroups"):
        from .cgroups import join

        join(cfg["cgroups"])  # while root: the groups' files belong to root
    if cfg.get("rlimits", True):
        set_rlimits(cfg, report)
    else:
        report.missing.append("rlimits: disabled")
    uid = cfg.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        report.uid = uid
    set_pdeathsig()
    if os.getppid() != cfg["server_pid"]:  # the fork server died while we started
        os._exit(1)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    scrub_env(cfg["workdir"])
    report.env_scrubbed = True
    if cfg.get("landlock", True):
        report.landlock_abi = landlock_restrict(cfg["family_dir"], cfg["ro_paths"], report)
        report.own_domain = report.landlock_abi >= 6  # signals scoped to the domain (Linux >= 6.12)
        if 0 < report.landlock_abi < 6:
            report.missing.append(f"landlock: ABI {report.landlock_abi} has no signal scoping (needs 6, Linux "
                                  "6.12): forks of an episode can signal each other")
    else:
        report.missing.append("landlock: disabled")
    if seccomp_filter is not None:
        seccomp_filter.load()
        report.seccomp = report.threads_refused = report.holder_guard = True


def set_pdeathsig(sig: int = signal.SIGKILL) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def _hygiene(keep_fd: int) -> None:
    """stdin/stdout/stderr -> /dev/null (printing at the C level goes nowhere), every other fd closed."""
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != keep_fd:
            os.dup2(null, fd)
    if null > 2:
        os.close(null)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 65536)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the host's terminal is for the host
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-size writes fail with EFBIG instead of killing
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def set_rlimits(cfg: dict, report: IsolationReport) -> None:
    limits = {
        resource.RLIMIT_CPU: cfg.get("cpu_seconds"),
        resource.RLIMIT_FSIZE: cfg.get("fsize_bytes"),
        resource.RLIMIT_NOFILE: cfg.get("nofile"),
        resource.RLIMIT_CORE: 0,
    }
    if cfg.get("as_bytes"):
        limits[resource.RLIMIT_AS] = cfg["as_bytes"]
    if cfg.get("uid") is not None and cfg.get("nproc"):  # per-uid count: meaningful only with our own uid
        limits[resource.RLIMIT_NPROC] = cfg["nproc"]
    try:
        for which, value in limits.items():
            if value is None:
                continue
            hard = value + 1 if which == resource.RLIMIT_CPU else value  # SIGXCPU first, SIGKILL a second later
            resource.setrlimit(which, (value, hard))
        report.rlimits = True
    except (ValueError, OSError) as e:
        report.missing.append(f"rlimits: {e}")


def scrub_env(workdir: str) -> None:
    import tempfile

    tempfile.tempdir = workdir  # may have been cached as /tmp before the fork
    os.environ.clear()  # also clears the C-level environ (unsetenv per key)
    os.environ.update({
        "HOME": workdir, "TMPDIR": workdir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    })


# -- Landlock (raw syscalls; Python has no binding) --------------------------------------------------------
SYS_landlock_create_ruleset, SYS_landlock_add_rule, SYS_landlock_restrict_self = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK, FS_MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0 when unsupported or disabled)."""
    v = _libc.syscall(SYS_landlock_create_ruleset, None, ctypes.c_size_t(0),
                      ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(v), 0)


def readonly_paths() -> list[str]:
    """Where Python and its libraries live (read-only for the worker)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr/lib", "/usr/lib64", "/lib", "/lib64",
             "/usr/share/zoneinfo", "/etc/ld.so.cache", "/etc/localtime", "/proc"}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.add(p)
    paths.update(p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p)
    return sorted(p for p in paths if os.path.exists(p))


def landlock_restrict(rw_dir: str, ro_paths: list[str], report: IsolationReport) -> int:
    abi = landlock_abi()
    if abi <= 0:
        report.missing.append("landlock: not supported by this kernel")
        return 0
    fs = (1 << 13) - 1  # ABI 1 rights
    if abi >= 2:
        fs |= FS_REFER
    if abi >= 3:
        fs |= FS_TRUNCATE
    if abi >= 5:
        fs |= FS_IOCTL_DEV
    attr = _RulesetAttr(handled_access_fs=fs)
    size = 8
    if abi >= 4:  # no TCP bind/connect at all (no rule allows a port)
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6:  # no signals / abstract unix sockets to anything outside this episode's domain
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    ruleset = _libc.syscall(SYS_landlock_create_ruleset, ctypes.byref(attr), ctypes.c_size_t(size),
                            ctypes.c_uint32(0))
    if ruleset < 0:
        report.missing.append(f"landlock: create_ruleset failed ({os.strerror(ctypes.get_errno())})")
        return 0
    try:
        ro = FS_READ_FILE | FS_READ_DIR
        for path in ro_paths:
            _add_rule(ruleset, path, ro)
        for dev in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"):
            if os.path.exists(dev):
                _add_rule(ruleset, dev, FS_READ_FILE | FS_WRITE_FILE)
        rw = fs & ~(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_IOCTL_DEV)
        _add_rule(ruleset, rw_dir, rw)
        if _libc.syscall(SYS_landlock_restrict_self, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def _add_rule(ruleset: int, path: str, access: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not os.path.isdir(path):
            access &= _FILE_RIGHTS
        rule = _PathBeneathAttr(allowed_access=access, parent_fd=fd)
        if _libc.syscall(SYS_landlock_add_rule, ctypes.c_int(ruleset), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                         ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_add_rule({path}): {os.strerror(err)}")
    finally:
        os.close(fd)
