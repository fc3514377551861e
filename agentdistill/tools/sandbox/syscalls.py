"""The seccomp allowlist of a sandbox worker (built with pyseccomp, a ctypes binding of libseccomp).

Everything not listed fails with EPERM (Python raises PermissionError), so an unexpected need shows up as a
clear error instead of a killed process. Left out on purpose: execve/execveat (no programs), socket()
(no network, no unix-socket clients: only socketpair for the worker's own channel), ptrace and
process_vm_*, mount/unshare/setns/pivot_root, bpf, perf_event_open, keyctl, setsid/setpgid (processes stay
in reach of the clean-up), kernel module/reboot/clock calls, threads (clone with CLONE_THREAD: the fork
server has set up every library before the filter is loaded, and a thread could not be carried by the forked
snapshots), POSIX timers and fcntl's signal-on-I/O commands (both would signal the state holder after the step
that set them), prlimit/sched_setaffinity on other processes. Syscalls of other architectures (int 0x80) kill
the process (libseccomp's bad-arch action).

    f = compile_filter(); f.load()   # compiled in the fork server, loaded in the worker after Landlock
    holder_guard(os.getppid()).load()  # in a step child: its code cannot signal the holder of the state
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct
import tempfile

ALLOW = """
read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek close close_range
open openat openat2 stat fstat lstat newfstatat statx access faccessat faccessat2 readlink readlinkat
getcwd chdir fchdir getdents getdents64 mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2
link linkat symlink symlinkat chmod fchmod fchmodat chown fchown fchownat lchown truncate ftruncate fsync
fdatasync sync_file_range flock dup dup2 dup3 pipe pipe2 utime utimes utimensat futimesat statfs fstatfs
fadvise64 fallocate copy_file_range sendfile splice tee
mmap munmap mprotect mremap madvise brk msync mincore
rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigtimedwait rt_sigsuspend sigaltstack
kill tgkill tkill pause
clock_gettime clock_getres gettimeofday time nanosleep clock_nanosleep getitimer setitimer alarm times
getpid getppid gettid getuid geteuid getgid getegid getresuid getresgid getgroups getpgrp getpgid getsid
getrlimit setrlimit getrusage sysinfo uname getcpu getrandom umask getpriority
sched_getaffinity sched_yield sched_getparam sched_getscheduler sched_get_priority_max sched_get_priority_min
fork vfork wait4 waitid exit exit_group set_tid_address set_robust_list get_robust_list futex
rseq arch_prctl membarrier restart_syscall sched_getattr get_mempolicy capget memfd_create
landlock_create_ruleset landlock_add_rule landlock_restrict_self
poll ppoll select pselect6 epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2
eventfd eventfd2 timerfd_create timerfd_settime timerfd_gettime
sendto sendmsg recvfrom recvmsg shutdown getsockopt setsockopt getsockname getpeername
""".split()

XATTR = """getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr llistxattr flistxattr
removexattr lremovexattr fremovexattr""".split()

# prctl options the runtime needs (parent-death signal, subreaper, names); others (e.g. dumpable) are denied.
# PR_SET_SECCOMP (22) only adds filters (a step child's holder guard); a filter can only take rights away.
PRCTL_ALLOWED = [1, 2, 15, 16, 21, 36, 37, 38, 39]
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
# fcntl commands: descriptors, flags, locks, pipes, seals. Not F_SETOWN(_EX)/F_SETSIG/F_NOTIFY/F_SETLEASE,
# which make the kernel signal a process later (the holder, after the step that asked for it)
FCNTL_ALLOWED = [0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 14, 16, 36, 37, 38, 1025, 1030, 1031, 1032, 1033, 1034]
CLONE_THREAD = 0x00010000
# ioctl requests Python uses on files: TCGETS (isatty), TIOCGWINSZ, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX
IOCTL_ALLOWED = [0x5401, 0x5413, 0x541B, 0x5421, 0x5450, 0x5451]
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80


class CompiledFilter:
    """The filter compiled to BPF once (in the fork server); `load()` installs it with one prctl call.

    libseccomp would recompile the rules on every load (~5 ms); a worker start must cost far less."""

    def __init__(self, bpf: bytes):
        if not bpf or len(bpf) % 8:
            raise ValueError("libseccomp exported no valid BPF program")
        self.bpf = bpf
        self._buf = ctypes.create_string_buffer(bpf, len(bpf))
        self._prog = _SockFprog(len(bpf) // 8, ctypes.cast(self._buf, ctypes.c_void_p))

    def load(self) -> None:
        # PR_SET_SECCOMP(22), SECCOMP_MODE_FILTER(2); no_new_privs is already set by the caller
        if _libc.prctl(22, 2, ctypes.byref(self._prog), 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"seccomp filter load failed: {os.strerror(err)}")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_libc = ctypes.CDLL(None, use_errno=True)


def compile_filter() -> CompiledFilter:
    """Build the allowlist with libseccomp and export it as a BPF program."""
    f = build_filter()
    with tempfile.TemporaryFile() as tmp:
        f.export_bpf(tmp)
        tmp.seek(0)
        return CompiledFilter(tmp.read())


def build_filter():
    """A loadable pyseccomp.SyscallFilter; raises ImportError/OSError when seccomp is unavailable."""
    import pyseccomp as sc

    f = sc.SyscallFilter(defaction=sc.ERRNO(errno.EPERM))
    for name in ALLOW:
        try:
            f.add_rule(sc.ALLOW, name)
        except (ValueError, OSError):  # a name this architecture doesn't have
            pass
    for opt in PRCTL_ALLOWED:
        f.add_rule(sc.ALLOW, "prctl", sc.Arg(0, sc.EQ, opt))
    for req in IOCTL_ALLOWED:
        f.add_rule(sc.ALLOW, "ioctl", sc.Arg(1, sc.EQ, req))
    f.add_rule(sc.ALLOW, "prctl", sc.Arg(0, sc.EQ, PR_SET_SECCOMP), sc.Arg(1, sc.EQ, SECCOMP_MODE_FILTER))
    for cmd in FCNTL_ALLOWED:
        f.add_rule(sc.ALLOW, "fcntl", sc.Arg(1, sc.EQ, cmd))
    for name in ("prlimit64", "sched_setaffinity"):  # only on the calling process (pid 0)
        f.add_rule(sc.ALLOW, name, sc.Arg(0, sc.EQ, 0))
    f.add_rule(sc.ALLOW, "socketpair", sc.Arg(0, sc.EQ, socket.AF_UNIX))
    for name in XATTR:  # "not supported" (not EPERM): shutil.copytree/copystat then skip extended attributes
        f.add_rule(sc.ERRNO(errno.EOPNOTSUPP), name)
    # clone only for processes: no namespace flags (an unprivileged user namespace would be a new attack
    # surface), no CLONE_THREAD (Python then raises "can't start new thread")
    f.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_NAMESPACE_FLAGS | CLONE_THREAD, 0))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # glibc then falls back to clone(), whose flags are visible
    return f


# -- the holder guard: a tiny filter a step child adds for itself -----------------------------------------------
# kill, tkill, tgkill per architecture (seccomp sees the native numbers; other architectures are killed above)
SIGNAL_SYSCALLS = {"x86_64": (62, 200, 234), "aarch64": (129, 130, 131)}
_RET_ALLOW, _RET_EPERM = 0x7FFF0000, 0x00050000 | errno.EPERM


def holder_guard(holder: int) -> CompiledFilter:
    """A filter that refuses signals to `holder`, to process groups and to every process (kill(-1)).

    Loaded by a step child before it runs code: the code cannot kill the process that keeps the state before
    the step, so a step that tries fails and the state survives. Filters stack: a committed step child keeps
    its guard (the refused pid is then a dead one's, see Worker._prefork for pid reuse). Raw BPF: libseccomp
    would cost milliseconds per step."""
    nrs = SIGNAL_SYSCALLS.get(platform.machine())
    if nrs is None:
        raise OSError(f"no holder guard for architecture {platform.machine()}")
    kill, tkill, tgkill = nrs
    # (code, jt, jf, k) with jt/jf as labels resolved below; args[0]'s low word is at offset 16 (little endian)
    prog = [
        ("ld", 0), ("jeq", kill, "pid_or_group", None), ("jeq", tkill, "pid", None), ("jeq", tgkill, "pid", None),
        ("ret", _RET_ALLOW),
        "pid_or_group", ("ld", 16), ("jeq", 0, "deny", None), ("jge", 0x80000000, "deny", None),
        ("jeq", holder, "deny", None), ("ret", _RET_ALLOW),
        "pid", ("ld", 16), ("jeq", holder, "deny", None), ("ret", _RET_ALLOW),
        "deny", ("ret", _RET_EPERM),
    ]
    return CompiledFilter(_assemble(prog))


def _assemble(prog: list) -> bytes:
    labels, insns = {}, []
    for item in prog:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    codes = {"ld": 0x20, "jeq": 0x15, "jge": 0x35, "ret": 0x06}  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JGE|K, RET|K
    out = b""
    for i, ins in enumerate(insns):
        op, k = ins[0], ins[1]
        jt = jf = 0
        if op in ("jeq", "jge"):
            jt = 0 if ins[2] is None else labels[ins[2]] - i - 1
            jf = 0 if ins[3] is None else labels[ins[3]] - i - 1
        out += struct.pack("=HBBI", codes[op], jt, jf, k & 0xFFFFFFFF)
    return out
