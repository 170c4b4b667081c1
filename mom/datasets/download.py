"""Fetch a file, verify its checksum, unpack an archive safely.

Used only when a dataset is built with ``download=True``; tests serve files
from a local HTTP server or ``file://`` URLs. Any URL scheme that
``urllib.request`` opens works (http, https, file).
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.request
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from ..io import atomic_write, file_digests

__all__ = ["download_url", "file_digests", "check_integrity", "extract_archive"]

CHUNK = 1 << 20  # bytes read per step of a download


def _mismatch(expected: dict[str, str | None], got: dict[str, str]) -> list[str]:
    return [f"{k} expected {v.lower()}, got {got[k]}" for k, v in expected.items()
            if v is not None and v.lower() != got[k]]


def check_integrity(path: str | os.PathLike, md5: str | None = None,
                    sha256: str | None = None) -> bool:
    """True if ``path`` exists and matches every digest given."""
    if not Path(path).is_file():
        return False
    return not _mismatch({"md5": md5, "sha256": sha256}, file_digests(path))


def download_url(url: str, dest: str | os.PathLike, md5: str | None = None,
                 sha256: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically and verify the digests given.

    An existing ``dest`` that matches the digests is kept (no download). The
    bytes go to a temporary file beside ``dest`` that replaces it only after
    the checksum passed; on a mismatch the temporary file is removed and a
    ``ValueError`` names the file and both digests. Returns ``Path(dest)``.
    """
    dest = Path(dest)
    expected = {"md5": md5, "sha256": sha256}
    if dest.is_file() and (md5 or sha256) and check_integrity(dest, md5, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    hashes = {"md5": hashlib.md5(), "sha256": hashlib.sha256()}
    try:
        response = urllib.request.urlopen(url, timeout=60)
    except OSError as err:
        raise OSError(f"cannot download {url}: {err}") from err
    with response, atomic_write(dest) as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                  disable=not progress) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                for h in hashes.values():
                    h.update(block)
                bar.update(len(block))
        got = {k: h.hexdigest() for k, h in hashes.items()}
        bad = _mismatch(expected, got)
        if bad:  # raising inside atomic_write removes the temporary file
            raise ValueError(f"checksum mismatch for {dest} (from {url}): {'; '.join(bad)}")
    return dest


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise ValueError(f"{archive}: refusing unsafe member path {member.name!r}")
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        base = name.parent if member.issym() else PurePosixPath()
        if target.is_absolute() or ".." in (base / target).parts:
            raise ValueError(f"{archive}: refusing link {member.name!r} -> {member.linkname!r}")
    elif not (member.isfile() or member.isdir()):
        raise ValueError(f"{archive}: refusing special member {member.name!r}")


def extract_archive(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Unpack a .tar/.tgz/.tar.gz into ``dest_dir``; refuses members that would
    land outside it (absolute paths, ``..``, outward links, device files)."""
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                _check_member(m, archive)
            if hasattr(tarfile, "data_filter"):  # second guard where Python has it
                tar.extractall(dest_dir, members=members, filter="data")
            else:
                tar.extractall(dest_dir, members=members)
    except (tarfile.TarError, EOFError) as err:
        raise ValueError(f"cannot extract {archive}: {err}") from err
    return dest_dir
