"""Atomic file writing: a writer either produces all its files complete, or leaves nothing behind.

Every writer in jaxgamma writes through :func:`atomic_paths`: it writes to temporary files in the
target folders, which are moved onto the final names (``os.replace``) only once all of them have been
written. On any error the temporary files (and any folder created for them) are removed and the
targets are untouched.

>>> with atomic_paths("models.yaml", "models_covariance.dat", overwrite=False) as (tmp_yaml, tmp_cov):
...     tmp_yaml.write_text(text)
...     table.write(tmp_cov, format="ascii.fixed_width", overwrite=True)
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_paths", "check_writable", "write_text_atomic"]


def _as_path(path: Any) -> Path:
    return Path(os.path.expandvars(os.fspath(path)))


def check_writable(paths: Any, overwrite: bool) -> None:
    """Raise ``FileExistsError`` (an ``OSError``, as Gammapy's ``IOError``) if a target exists and
    ``overwrite`` is False, or ``IsADirectoryError`` if a target is a folder."""
    for path in paths:
        path = _as_path(path)
        if path.is_dir():
            raise IsADirectoryError(f"cannot write {str(path)!r}: it is a folder")
        if path.exists() and not overwrite:
            raise FileExistsError(f"File exists already: {str(path)!r} (use overwrite=True to replace it)")


def _make_temporary(target: Path) -> Path:
    # Same folder as the target, so that os.replace is a rename on one filesystem; hidden, and with
    # the target's suffixes so that writers that infer the format from the name still work. Created
    # with O_EXCL and mode 0o666, so the process umask applies as for a normal file.
    suffix = "".join(target.suffixes[-2:])
    while True:
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _commit(tmp: Path, target: Path, overwrite: bool) -> None:
    if not overwrite:
        # link() refuses to replace an existing file: no window in which a file created by someone
        # else between the check and now would be clobbered
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise FileExistsError(
                f"File exists already: {str(target)!r} (use overwrite=True to replace it)"
            ) from None
        except OSError:
            pass  # filesystem without hard links: fall back to replace
        else:
            os.unlink(tmp)
            return
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_paths(*paths: Any, overwrite: bool = False) -> Iterator[tuple[Path, ...]]:
    """Yield temporary paths to write instead of ``paths``; move them into place on success.

    The temporary files exist (empty) when yielded: writers that refuse to replace an existing file
    need their ``overwrite=True``. Missing folders are created, and removed again on failure. The
    targets are moved into place one after the other once all are written; only a failure of that
    final rename itself (not of any writer) can leave some targets replaced and others not.

    Raises
    ------
    FileExistsError
        Before anything is written, if a target exists and ``overwrite`` is False.
    """
    targets = [_as_path(p) for p in paths]
    check_writable(targets, overwrite)
    created_dirs: list[Path] = []
    temporaries: list[Path] = []
    try:
        for target in targets:
            _make_parents(target.parent, created_dirs)
            temporaries.append(_make_temporary(target))
        yield tuple(temporaries)
        for tmp, target in zip(temporaries, targets, strict=True):
            _commit(tmp, target, overwrite)
    except BaseException:
        for tmp in temporaries:
            with contextlib.suppress(OSError):
                tmp.unlink()
        for folder in reversed(created_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _make_parents(folder: Path, created: list[Path]) -> None:
    """Create ``folder`` and its missing parents, appending each folder created to ``created``."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for f in reversed(missing):
        f.mkdir()
        created.append(f)


def write_text_atomic(path: Any, text: str, overwrite: bool = False, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_paths`)."""
    with atomic_paths(path, overwrite=overwrite) as (tmp,):
        tmp.write_text(text, encoding=encoding)
