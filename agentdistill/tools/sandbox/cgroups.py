"""Limits on a whole episode (the episode and all its forks): a cgroup v1 `memory` and `pids` group per family.

Per-process rlimits cannot bound an episode that forks candidates (each fork gets the full address space
again); a cgroup counts them together. The fork server (root) makes one folder per sandbox below its own
cgroup, and one per family below that:

    <memory mount>/<server's cgroup>/agentdistill-<server pid>/f<family>/   memory.limit_in_bytes
    <pids mount>/<server's cgroup>/agentdistill-<server pid>/f<family>/     pids.max

A worker joins its family's groups while still root (`join`); its forks inherit them and cannot leave (the
files belong to root and lie outside Landlock's read-write folder). The host reads usage with `usage()`.

    cg = EpisodeCgroups.create(os.getpid())   # None + reason when this machine has no usable cgroup v1
    paths = cg.add_family(3, memory_bytes=512 << 20, pids=64); join(paths); ...; cg.remove_family(3)
"""

from __future__ import annotations

import os

CONTROLLERS = ("memory", "pids")


def _mounts() -> dict[str, str]:
    """controller -> mount point of its cgroup v1 hierarchy."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(rest) >= 3 and rest[0] == "cgroup":
                for opt in rest[2].split(","):
                    if opt in CONTROLLERS:
                        found[opt] = fields[4]
    return found


def _own_paths() -> dict[str, str]:
    """controller -> this process's cgroup path inside that hierarchy."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            for name in names.split(","):
                if name in CONTROLLERS:
                    out[name] = path
    return out


class EpisodeCgroups:
    def __init__(self, roots: dict[str, str]):
        self.roots = roots  # controller -> this sandbox's folder
        self.families: dict[int, dict[str, str]] = {}

    @classmethod
    def create(cls, tag: int) -> "tuple[EpisodeCgroups | None, str | None]":
        """The sandbox's cgroup folders, or (None, why not)."""
        if os.geteuid() != 0:
            return None, "episode cgroup: needs root"
        try:
            mounts, own = _mounts(), _own_paths()
        except OSError as e:
            return None, f"episode cgroup: cannot read the cgroup layout ({e})"
        lacking = [c for c in CONTROLLERS if c not in mounts or c not in own]
        if lacking:
            return None, (f"episode cgroup: no cgroup v1 hierarchy for {', '.join(lacking)} (cgroup v2 only is "
                          "not supported yet); memory and processes are limited per process only")
        roots = {}
        try:
            for c in CONTROLLERS:
                root = os.path.join(mounts[c], own[c].lstrip("/"), f"agentdistill-{tag}")
                os.makedirs(root, exist_ok=True)
                roots[c] = root
        except OSError as e:
            for root in roots.values():
                _rmdir(root)
            return None, f"episode cgroup: cannot create {e.filename} ({e.strerror})"
        return cls(roots), None

    def add_family(self, fam: int, memory_bytes: int | None, pids: int | None) -> dict[str, str]:
        paths = {}
        try:
            for c, root in self.roots.items():
                path = os.path.join(root, f"f{fam}")
                os.mkdir(path)
                paths[c] = path
            if memory_bytes:
                _write(os.path.join(paths["memory"], "memory.limit_in_bytes"), str(memory_bytes))
            if pids:
                _write(os.path.join(paths["pids"], "pids.max"), str(pids))
        except OSError:
            for path in paths.values():
                _rmdir(path)
            raise
        self.families[fam] = paths
        return paths

    def remove_family(self, fam: int) -> bool:
        """Delete a family's groups; False while a process is still in them (try again later)."""
        paths = self.families.get(fam)
        if paths is None:
            return True
        done = all([_rmdir(p) for p in paths.values()])
        if done:
            del self.families[fam]
        return done

    def close(self) -> None:
        for fam in list(self.families):
            self.remove_family(fam)
        for root in self.roots.values():
            _rmdir(root)


def join(paths: dict[str, str]) -> None:
    """Move the calling process into the given groups (needs root; before dropping privileges)."""
    for path in paths.values():
        _write(os.path.join(path, "cgroup.procs"), str(os.getpid()))


def usage(paths: dict[str, str] | None) -> dict:
    """What a family uses now and at most: memory (MB), processes, OOM kills. Empty without cgroups."""
    if not paths:
        return {}
    out = {}
    mem, pids = paths.get("memory"), paths.get("pids")
    try:
        if mem:
            out["memory_mb"] = int(_read(os.path.join(mem, "memory.usage_in_bytes"))) / 2 ** 20
            out["memory_peak_mb"] = int(_read(os.path.join(mem, "memory.max_usage_in_bytes"))) / 2 ** 20
            limit = int(_read(os.path.join(mem, "memory.limit_in_bytes")))
            out["memory_limit_mb"] = limit / 2 ** 20 if limit < 2 ** 60 else None
            oom = dict(line.split() for line in _read(os.path.join(mem, "memory.oom_control")).splitlines())
            out["oom_kills"] = int(oom.get("oom_kill", 0))
        if pids:
            out["processes"] = int(_read(os.path.join(pids, "pids.current")))
    except (OSError, ValueError):
        pass  # the family was released meanwhile
    return out


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False
