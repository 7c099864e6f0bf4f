"""Atomic file writes: a crash mid-write never leaves a half-written file behind.

Also the checks a command makes on its output file before it starts working
(:func:`check_output_file`, :func:`check_free_space`), and the one-line error for a write the
filesystem refused (:func:`write_error`): a full disk says "no space left on device" and names
the file the user asked for, not a temporary name.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from simgan_toolkit.errors import DataError

#: errno values of a write the filesystem has no room for, and what the error line says.
NO_SPACE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "no space left (disk quota exceeded)",
    errno.EFBIG: "file too large for its filesystem",
}


def write_error(path: str | os.PathLike[str], exc: OSError) -> DataError:
    """The one-line error for a failed write to ``path``, e.g. "cannot write 'x.h5': no space left on device"."""
    reason = NO_SPACE_ERRNOS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    return DataError(f"cannot write {str(path)!r}: {reason}")


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing ancestor (``.`` if none does): the
    folder that holds it or will once created, or a file in the way."""
    return next((p for p in (path, *path.parents) if p.exists()), Path("."))


def probe_writable(folder: Path) -> None:
    """Create and delete a hidden file in ``folder``; raises OSError if the folder refuses it.

    A probe tells more than permission bits: read-only mounts, ACLs, root's rights.
    """
    fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=folder)
    os.close(fd)
    os.unlink(probe)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def check_free_space(path: str | os.PathLike[str], needed: int) -> None:
    """Raise DataError if the filesystem that will hold ``path`` has less than ``needed`` bytes free.

    ``path`` need not exist yet: its nearest existing ancestor is measured.
    """
    free = shutil.disk_usage(nearest_existing(Path(path).parent)).free
    if free < needed:
        raise DataError(
            f"cannot write {str(path)!r}: no space left on device (needs about {_megabytes(needed)}, "
            f"{_megabytes(free)} free)"
        )


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are the same existing file, however spelt (symlinks, ``./``, hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _check_writable_folder(target: Path) -> None:
    """Raise DataError unless ``target``'s folder exists or can be created, and accepts new files."""
    folder = nearest_existing(target.parent)
    if not folder.is_dir():
        raise DataError(f"cannot write {str(target)!r}: {str(folder)!r} is a file, not a folder")
    try:
        probe_writable(folder)
    except OSError as exc:
        raise DataError(f"cannot write {str(target)!r}: folder {str(folder)!r} is not writable ({exc.strerror or exc})") from None


def check_output_file(
    path: str | os.PathLike[str], *, overwrite: bool = False, inputs: Mapping[str, str | os.PathLike[str]] | None = None
) -> None:
    """Check, before any work, that a command may write the file ``path``; raise DataError if not.

    Refused: a path that names a folder, or lies under a file or a folder that cannot be
    written; a path naming one of ``inputs`` (``{"input file": path, ...}``), however spelt:
    an output never replaces an input, even with ``overwrite``; an existing file unless
    ``overwrite``.
    """
    target = Path(path)
    for role, source in (inputs or {}).items():
        if _same_file(target, Path(source)):
            raise DataError(f"output {str(path)!r} is the {role} {str(source)!r}; write the output to another file")
    if target.is_dir():
        raise DataError(f"output {str(path)!r} is a folder; give a file name, e.g. {str(target / 'refined.h5')!r}")
    if target.exists() and not overwrite:
        raise DataError(f"output {str(path)!r} already exists; pass --overwrite to replace it")
    _check_writable_folder(target)


#: Names of the temporary files :func:`atomic_path` writes beside its target:
#: ``.NAME.XXXXXXXX.tmp`` (``tempfile.mkstemp``'s 8 random characters). A process killed with
#: SIGKILL leaves them behind; :func:`remove_stale_temp_files` removes them later.
TEMP_FILE_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def is_toolkit_temp_file(path: Path) -> bool:
    """Whether ``path`` is a temporary file :func:`atomic_path` writes before its rename."""
    return TEMP_FILE_NAME.fullmatch(path.name) is not None and path.is_file()


def remove_stale_temp_files(folder: Path, target_name: str | None = None, recursive: bool = True) -> list[Path]:
    """Delete the toolkit's temporary files in ``folder`` (left by a killed process); returns them.

    Only names of :data:`TEMP_FILE_NAME`'s pattern go, and with ``target_name`` only those of
    that target (``.TARGET.*.tmp``): nothing else of the folder is touched.
    """
    # Escaped: a name such as "a[1].h5" must not match (and delete) another file's temp files.
    pattern = f".{glob.escape(target_name)}.*.tmp" if target_name is not None else ".*.tmp"
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    stale = sorted(p for p in found if is_toolkit_temp_file(p))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file lives in the same directory so that ``os.replace`` is an atomic rename.
    It is removed whatever happens. Failures of the filesystem become one-line DataErrors
    naming ``path``: creating the folder or the temporary file, a full disk inside the block,
    and the final rename (e.g. onto a folder).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise write_error(target, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OSError as exc:
            if exc.errno in NO_SPACE_ERRNOS:  # other OSErrors may concern files the block reads
                raise write_error(target, exc) from None
            raise
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        try:
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
        except OSError as exc:
            raise write_error(target, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


class _RecordingWriter:
    """A binary file that remembers why a write failed.

    torch.save reports a failed write only as "unexpected pos N vs M"; the OSError (e.g. errno
    28, no space left) is what the user needs to see.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._file.flush()


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj)`` to ``path`` atomically; a full disk is a DataError naming ``path``."""
    import torch  # here, not at the top: most users of this module never need torch

    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        writer = _RecordingWriter(file)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None  # atomic_path turns it into a DataError
            raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
