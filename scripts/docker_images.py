"""Build the docker images rlhub's docker tier needs, locally: no image registry is reachable here.

``rlhub-python``: Debian's own Python (the python3.11 packages installed on this host) and the
shared libraries it and its extension modules link to, and nothing else: no shell, no package
manager, no site-packages. It is what the sandbox's docker backend runs programs in.

The root filesystem is written as a reproducible tar (sorted names, zero mtimes, root owner) and
the image is tagged with that tar's content hash, so an unchanged host skips the import:

    python3 scripts/docker_images.py          # prints the image's tag, e.g. rlhub-python:1a2b3c4d5e6f

Standard library only: it runs with the system Python before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPOSITORY = "rlhub-python"
PACKAGES = ("python3-minimal", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")
LEAVE_OUT = re.compile(r"^/usr/(share|lib/python3\.11/(test|idlelib|tkinter|turtledemo|ensurepip))(/|$)")
"""Documentation and modules no program in a sandbox needs (the test suite and GUI toolkits)."""
USRMERGE_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
EMPTY_DIRS = ("dev", "etc", "proc", "sys", "tmp")
LDD_PATH = re.compile(r"(/\S+) \(0x[0-9a-f]+\)")


def package_files(packages: tuple[str, ...]) -> list[str]:
    """Every regular file and symlink the installed Debian ``packages`` own (``dpkg -L``)."""
    listing = subprocess.run(["dpkg", "-L", *packages], capture_output=True, text=True)
    if listing.returncode != 0:
        sys.exit(f"docker_images: {listing.stderr.strip()}; install them: apt-get install -y {' '.join(packages)}")
    paths = {line.strip() for line in listing.stdout.splitlines() if line.startswith("/")}
    return sorted(p for p in paths if not LEAVE_OUT.match(p) and (os.path.islink(p) or os.path.isfile(p)))


def shared_libraries(elf_files: list[str]) -> set[str]:
    """The shared libraries ``elf_files`` load (transitively, as ``ldd`` resolves them)."""
    libraries = set()
    for path in elf_files:
        result = subprocess.run(["ldd", path], capture_output=True, text=True)
        libraries.update(LDD_PATH.findall(result.stdout))
    return libraries


def with_link_targets(paths: set[str]) -> set[str]:
    """``paths`` plus every symlink's chain of targets, all spelled under /usr (merged /usr)."""
    found = set()
    for path in paths:
        while True:
            path = os.path.normpath(path)
            for top, target in USRMERGE_LINKS.items():
                if path.startswith(f"/{top}/"):
                    path = f"/{target}{path[len(top) + 1 :]}"
            if path in found:
                break
            found.add(path)
            if not os.path.islink(path):
                break
            path = os.path.join(os.path.dirname(path), os.readlink(path))
    return found


def python_root_files() -> list[str]:
    files = package_files(PACKAGES)
    elves = [p for p in files if not os.path.islink(p) and (p.endswith(".so") or "/bin/" in p)]
    return sorted(with_link_targets(set(files) | shared_libraries(elves)))


def write_tar(files: list[str], out) -> None:
    """A reproducible tar of ``files`` (and their parent directories) plus the merged-/usr links."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        directories = {"usr"} | set(EMPTY_DIRS)
        for path in files:
            parent = os.path.dirname(path).lstrip("/")
            while parent:
                directories.add(parent)
                parent = os.path.dirname(parent)
        for name in sorted(directories):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            add(info)
        for top, target in sorted(USRMERGE_LINKS.items()):
            info = tarfile.TarInfo(top)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            add(info)
        for path in files:
            info = tarfile.TarInfo(path.lstrip("/"))
            if os.path.islink(path):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
                add(info)
            else:
                data = Path(path).read_bytes()
                info.size, info.mode = len(data), os.stat(path).st_mode & 0o755
                add(info, data)


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def build_python_image() -> str:
    """Import the ``rlhub-python`` image unless one with the same content exists; return its tag."""
    with tempfile.TemporaryFile() as tar:
        write_tar(python_root_files(), tar)
        tar.seek(0)
        digest = hashlib.file_digest(tar, "sha256").hexdigest()
        tag = f"{REPOSITORY}:{digest[:12]}"
        if image_exists(tag):
            print(f"docker_images: {tag} is up to date", file=sys.stderr)
            return tag
        tar.seek(0)
        print(f"docker_images: importing {tag}", file=sys.stderr)
        subprocess.run(["docker", "import", "-", tag], stdin=tar, check=True, stdout=subprocess.DEVNULL)
    return tag


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    print(build_python_image())


if __name__ == "__main__":
    main()
