"""The bytes of the materials applicants upload, kept outside the database: a content-addressed store under the
data folder (``<data_dir>/services/files/ab/cd/<sha256>``), and what a file's first bytes say it is.

The store is written before the row that names a file, never after: a transaction that fails leaves at worst
bytes no row names (an orphan), never a row naming bytes that are not there. Orphans — left by a failed
transaction, or by a removed file whose content no other row names — are an applicant's documents all the
same, so the hourly ``services-files-sweep`` deletes them once a day has passed since they were last written
or reused (``FileStore.sweep``; a reuse touches the file, and a lock keeps the sweep and an upload apart)."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import tempfile
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

MAX_BYTES = 10 * 1024 * 1024  # 10 MiB a file
MAX_FILES_PER_MATERIAL = 10
TYPES = {  # the content types taken, with the extension a download is named with when the name has none
    "application/pdf": ".pdf",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "application/ofd": ".ofd",  # GB/T 33190 版式文档: a ZIP package with OFD.xml at its root
}
TYPE_NAMES = "PDF, JPEG, PNG, OFD"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sniff(data: bytes) -> str | None:
    """The allowed content type the bytes are (by their magic numbers, never by what the sender declared), or
    None. An OFD is a ZIP package whose root holds ``OFD.xml``; only the ZIP's directory is read."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = {n.lower() for n in z.namelist()}
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        return "application/ofd" if "ofd.xml" in names else None
    return None


def clean_name(name: str | None, content_type: str) -> str:
    """A file name fit to keep and to serve again: the last path part only (browsers send ``C:\\fakepath\\…``),
    NFC, no control characters, at most 200 characters; the type's extension when nothing is left."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip().strip(".")
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 10 else base[:200]
    return base or "material" + TYPES.get(content_type, "")


def content_disposition(name: str, disposition: str = "attachment") -> str:
    """The Content-Disposition of a download named ``name``: an ASCII ``filename`` for old clients and the
    UTF-8 name as RFC 5987 / RFC 6266 ``filename*`` (a Chinese name arrives as it was uploaded)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%;' else "_" for c in name) or "material"
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class FileStore:
    """Files by the SHA-256 of their content under ``root``; writing the same content twice keeps one copy."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def under(cls, data_dir: Path) -> FileStore:
        """The store of a deployment's data folder."""
        return cls(Path(data_dir) / "services" / "files")

    def path(self, sha256: str) -> Path:
        """Where the content with this SHA-256 lives (ValueError for anything but 64 lowercase hex digits)."""
        if not _SHA256.match(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Keep ``data`` (durably: written to a temporary file, flushed to disk, then renamed into place) and
        return its SHA-256. Content already there is not written again."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        with self._lock(fcntl.LOCK_SH):
            try:
                if target.stat().st_size == len(data):
                    os.utime(target)  # reused: fresh again, so the sweep leaves it for the row about to name it
                    return digest
            except FileNotFoundError:
                pass
            self._write(target, data)
        return digest

    @contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        """Uploads share the store's lock; the sweep takes it alone (across processes: flock on a file)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, mode)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def sweep(self, named: Callable[[], set[str]], *, grace: float = 86400.0, now: float | None = None) -> int:
        """Delete the content that no row names (``named()``: the digests the rows name, read after the
        candidates are listed) and that was last written or reused more than ``grace`` seconds ago; returns
        how many files went."""
        if not self.root.is_dir():
            return 0
        cutoff = (time.time() if now is None else now) - grace
        old = []  # content, and the temporary files of writes that crashed; one walk of the store
        for p in self.root.glob("??/??/*"):
            if _SHA256.match(p.name) or p.name.startswith(".upload-"):
                try:
                    if p.stat().st_mtime < cutoff:
                        old.append(p)
                except FileNotFoundError:  # an upload's temporary file renamed meanwhile
                    continue
        if not old:
            return 0
        keep = named()
        gone = 0
        with self._lock(fcntl.LOCK_EX):
            for p in old:
                try:
                    if p.name in keep or p.stat().st_mtime >= cutoff:
                        continue
                    p.unlink()
                    gone += 1
                except FileNotFoundError:
                    continue
        return gone

    def _write(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, sha256: str) -> bytes | None:
        """The content with this SHA-256, or None when the store does not hold it."""
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None
