"""Cache folder, checksums and downloads that never leave a half-written file behind.

A download streams into a temporary file beside its destination and is renamed into place only
after its MD5 matches the published sum, so the cache holds verified files or nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from resnetlab.errors import ResnetlabError
from resnetlab.files import plain_file_mode

DEFAULT_CACHE = Path("~/.cache/resnetlab")
CHUNK = 1 << 20  # bytes read per step, for hashing and downloading


def cache_root(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$RESNETLAB_DATA``, else ``~/.cache/resnetlab``."""
    chosen = data_dir or os.environ.get("RESNETLAB_DATA") or DEFAULT_CACHE
    return Path(chosen).expanduser()


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(urls: Sequence[str], dest: Path, md5: str, *, quiet: bool = False) -> Path:
    """Fetch the first reachable of ``urls`` (mirrors) to ``dest``, verified against ``md5``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        try:
            _fetch_verified(url, dest, md5, quiet=quiet)
            return dest
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failures.append(f"{url} ({getattr(exc, 'reason', exc)})")
    raise ResnetlabError(
        f"could not download {dest.name}: {'; '.join(failures)}. "
        f"Check the network, or copy the file by hand into {dest.parent}"
    )


def _fetch_verified(url: str, dest: Path, md5: str, *, quiet: bool) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=True if quiet else None) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise ResnetlabError(
                f"checksum mismatch for {dest.name} downloaded from {url}: MD5 {digest.hexdigest()}, "
                f"expected {md5}. The file was not kept; try again later or download it by hand into {dest.parent}"
            )
        os.chmod(tmp, plain_file_mode())  # mkstemp's 0600: the cache is as readable as any file the user writes
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def verify_md5(path: Path, md5: str) -> None:
    """Raise if a file already in the cache does not match its published checksum."""
    actual = md5sum(path)
    if actual != md5:
        raise ResnetlabError(
            f"checksum mismatch for {path}: MD5 {actual}, expected {md5}. "
            f"Delete the file and run again to download a fresh copy"
        )
