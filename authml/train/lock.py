"""One training run at a time per project directory: an advisory lock on ``models/.train.lock``.

The operating system drops the lock when the process ends, however it ends, so a killed run never
leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from authml.errors import AuthmlError

LOCK_FILE = ".train.lock"


class TrainingLocked(AuthmlError):
    """Another `authml train` holds the lock for this project directory."""

    exit_code = 7


class TrainingLock:
    def __init__(self, models_root: Path):
        self.path = Path(models_root) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> TrainingLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise TrainingLocked(
                f"another authml train (pid {holder}) is running for {self.path.parent.parent}; "
                "wait for it to finish or run again later"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
