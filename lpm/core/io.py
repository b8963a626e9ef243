"""Atomic writes: a crash never leaves a half-written result file."""
from __future__ import annotations

import json
import math
import os
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np

from .errors import FileOperationFailed, LPMInputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no folder lock
    fcntl = None


@contextmanager
def _temporary_beside(path: Path):
    """A fresh temporary name in ``path``'s folder (the file exists, empty), removed
    again if the block fails; the block renames it into place when it succeeds."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(path: Path | str, write: Callable[[BinaryIO], Any], durable: bool = True) -> None:
    """Call ``write(fh)`` on a temporary file in the same folder, fsync, then
    rename it onto ``path``: readers see the old file or the whole new one.
    ``durable=False`` skips the fsync, for files that are cheap to remake: a
    crash of the process still leaves the old file or the new one, but after
    a power cut the new one may be empty (its reader must treat that as absent).

    A target that is a symbolic link or a special file is refused
    (:func:`refuse_special_target`); a failure to write (a full disk, say) is a
    :class:`FileOperationFailed` naming ``path``, and leaves the old file.
    """
    path = Path(path)
    refuse_special_target("output file", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _temporary_beside(path) as tmp:
            with open(tmp, "wb") as fh:
                write(fh)
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; use the usual mode
            os.replace(tmp, path)
    except OSError as exc:
        raise FileOperationFailed("write", path, exc) from None


def copy_atomic(source: Path | str, target: Path | str) -> None:
    """Make ``target`` a complete copy of ``source``, atomically: a hard link (or,
    on file systems without links, a copy) under a temporary name, then a rename."""
    source, target = Path(source), Path(target)
    try:
        with _temporary_beside(target) as tmp:
            os.unlink(tmp)
            try:
                os.link(source, tmp)
            except OSError:  # file systems without hard links
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
    except OSError as exc:
        raise FileOperationFailed("write", target, exc) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path | str, data: bytes, durable: bool = True) -> None:
    write_atomic(path, lambda fh: fh.write(data), durable)


def write_text_atomic(path: Path | str, text: str, durable: bool = True) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), durable)


def write_json_atomic(path: Path | str, obj: Any, durable: bool = True) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=json_default) + "\n", durable)


def json_default(x):
    """``json.dumps`` default: NumPy scalars and arrays as plain Python."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def jsonable(value: Any) -> Any:
    """A plain Python scalar for JSON and CSV cells (NumPy scalars unwrapped, NaN/inf → None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_output_path(name: str, path: Path | str, kind: str) -> Path:
    """Refuse, before any work, an output path that cannot be written.

    ``kind`` is ``"file"`` or ``"folder"``. The path may exist (a folder is
    reused: sweeps resume in it; a file is replaced atomically) or not;
    missing parent folders are created when the first result is written, as
    ``mkdir -p`` would. Refused, as an :class:`LPMInputError` naming the
    option ``name``: an existing path of the other kind, a regular file where
    a folder must be, a file path that is a symbolic link or a special file
    (device node, named pipe, socket: :func:`refuse_special_target`), and a
    folder that cannot be written to (probed by creating and removing a
    temporary file, which is right for root and read-only file systems too).
    A symbolic link to a folder is followed. Nothing is created.
    """
    path = Path(path)
    if kind == "file":
        refuse_special_target(name, path)
    if path.exists() or path.is_symlink():
        if kind == "file" and path.is_dir():
            raise LPMInputError(name, str(path), "a file path, not an existing folder")
        if kind == "folder" and not path.is_dir():
            raise LPMInputError(name, str(path), "a folder, not an existing file")
    folder = path if kind == "folder" else path.parent
    existing = folder
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        raise LPMInputError(name, str(path), f"a path whose parents are folders ('{existing}' is not a folder)")
    try:
        times = os.stat(existing)
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".lpm-write-check-")
        os.close(fd)
        os.unlink(probe)
        os.utime(existing, ns=(times.st_atime_ns, times.st_mtime_ns))  # the probe leaves no trace
    except OSError as exc:
        raise LPMInputError(name, str(path), f"a path in a folder you can write to ('{existing}': "
                                             f"{exc.strerror or exc})") from None
    return path


# ------------------------------------------------------------------ output targets
def refuse_special_target(name: str, path: Path) -> None:
    """Refuse an existing output *file* path that is not a plain regular file.

    A device node, FIFO or socket would be replaced by a regular file (or, for
    a FIFO, block); a symbolic link would be replaced by a regular file, since
    results are renamed into place, leaving the file it pointed to untouched.
    Both are refused: give the link's target itself. Symbolic links to
    *folders* are followed (results are written inside the folder it points to).
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # a new file (a parent that is a file is refused elsewhere)
        return
    except OSError as exc:
        raise LPMInputError(name, str(path), f"a path that can be inspected ({exc.strerror or exc})") from None
    if stat.S_ISLNK(mode):
        raise LPMInputError(name, str(path), f"a regular file, not a symbolic link (results are renamed into "
                                             f"place, which would replace the link; give its target "
                                             f"'{os.path.realpath(path)}' instead)")
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise LPMInputError(name, str(path), f"a regular file, not a {_kind_of(mode)}")


def _kind_of(mode: int) -> str:
    for test, word in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return word
    return "special file"


# ------------------------------------------------------------------ folder lock
#: the lock file of an output folder (sweeps, simulations, training runs)
LOCK_FILE = ".lock"


@contextmanager
def folder_lock(folder: Path | str, name: str = "out", what: str = "run") -> Iterator[Path]:
    """Create ``folder`` and hold its lock file (``flock``) for the block: one writer at a time.

    A second process is refused with an :class:`LPMInputError` naming the
    option ``name`` and the holder (``lpm process PID: COMMAND``, written into
    the file). The kernel drops the lock when its holder dies, however it
    dies; the file is removed when the block ends (a killed holder leaves it
    behind, unlocked: harmless, the next writer takes it over). Taking the
    lock checks that the locked file is still the one at the path, so that
    removing it on exit never lets two writers in.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    if fcntl is None:  # pragma: no cover - Windows: no folder lock
        yield path
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LPMInputError(name, str(folder), f"a folder that no other {what} is writing to ({holder} holds "
                                                   f"{path}; wait for it to finish, or choose another "
                                                   "folder)") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed it as we opened it: take the new one
    failed = True
    try:
        command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:6]))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"lpm process {os.getpid()} ({command})\n".encode(), 0)
        yield path
        failed = False
    finally:
        with suppress(OSError):
            os.unlink(path)  # still ours: nobody else can lock a file we hold
        os.close(fd)  # releases the lock
        if created and failed:  # refused before writing anything: leave no empty folder behind
            with suppress(OSError):
                folder.rmdir()


# ------------------------------------------------------------------ structured files
#: deepest nesting accepted in a configuration or simulation file (JSON or TOML)
MAX_NESTING = 32


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """Depth of nested lists/dicts in ``value`` (stops counting past ``limit``)."""
    depth, level = 0, [value]
    while level and depth <= limit:
        nxt = []
        for item in level:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, (list, tuple)):
                nxt.extend(item)
        if not nxt:
            break
        depth, level = depth + 1, nxt
    return depth


def read_structured(path: Path | str, name: str, kinds: tuple[str, ...] = (".json", ".toml"),
                    owner: str | None = None) -> Any:
    """Read a JSON or TOML file given as the option ``name``: every failure is
    one :class:`LPMInputError` naming the file and what went wrong (missing,
    unreadable, not UTF-8, malformed, or nested deeper than :data:`MAX_NESTING`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in kinds:
        raise LPMInputError(name, str(path), "a file ending in " + " or ".join(kinds), owner)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise LPMInputError(name, str(path), f"an existing {'/'.join(k[1:].upper() for k in kinds)} file",
                            owner) from None
    except IsADirectoryError:
        raise LPMInputError(name, str(path), "a file, not a folder", owner) from None
    except OSError as exc:
        raise LPMInputError(name, str(path), f"a file you can read (cannot read it: {exc.strerror or exc})",
                            owner) from None
    except UnicodeDecodeError as exc:
        raise LPMInputError(name, str(path), f"a UTF-8 text file ({exc})", owner) from None
    deep = f"a file nested at most {MAX_NESTING} levels deep"
    try:
        if suffix == ".toml":
            value = _toml().loads(text)
        else:
            value = json.loads(text)
    except RecursionError:
        raise LPMInputError(name, str(path), deep, owner) from None
    except (ValueError, TypeError) as exc:
        raise LPMInputError(name, str(path), f"valid {suffix[1:].upper()} ({exc})", owner) from None
    if nesting_depth(value) > MAX_NESTING:
        raise LPMInputError(name, str(path), deep, owner)
    return value


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib
