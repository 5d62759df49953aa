"""Secret keys kept outside the database: an environment variable, else a file in the data folder made on
first use (mode 0600). Used by the audit checkpoints' key and the licences' signing key."""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

log = logging.getLogger("citybase.keys")


def read_key_texts(env_var: str, path: Path, *, what: str, create: bool = True) -> tuple[list[str], str] | None:
    """The keys (as text, one per entry) of ``env_var`` (separated by commas or spaces) if it is set, else the
    lines of ``path`` (``#`` starts a comment), made with one new random key if missing and ``create`` (else
    None); with where they came from. A file others than its owner may read is logged as a warning."""
    env = os.environ.get(env_var, "").strip()
    if env:
        return [t for t in re.split(r"[,\s]+", env) if t], env_var
    if not path.exists():
        if not create:
            return None
        if create_key_file(path):
            log.info("created the %s %s (keep it outside database backups)", what, path)
    if path.stat().st_mode & 0o077:
        log.warning("%s file %s can be read by others than its owner; chmod 600 it", what, path)
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln], str(path)


def create_key_file(path: Path) -> bool:
    """A new file holding one random 256-bit key (hex), mode 0600. Written whole under a private name, then
    linked into place: a process starting at the same moment finds no file or the full key, never an empty
    one; the first link wins. False when another process made it first (theirs is used)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False  # another process made it first; use theirs
    finally:
        tmp.unlink(missing_ok=True)
    return True
