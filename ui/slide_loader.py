"""``TileLoader``: reads a slide's tiles on a thread pool, never on the GUI thread, and keeps them.

The view says which tiles it wants (``request``); each tile not cached and not already on its
way is read by a ``QRunnable`` (``SlideReader.read_region`` under one lock: the readers are not
known to be safe to share between threads), turned into a ``QImage`` there, cached
(``engine.imaging.slide_tiles.TileCache``) and announced by ``tile_loaded`` on the GUI thread.
A request replaces the wanted set: a queued read of a tile no longer wanted is dropped before
it touches the file.

The GUI thread never waits for a tile thread. A tile thread can itself wait for the GUI thread:
Python's garbage collector runs on whichever thread allocates, and collecting a dropped widget
there runs its destructor, which waits for the GUI's event loop. Blocking the GUI thread on the
file's lock while such a thread holds it would hang the window, so closing the file is handed to
whichever thread holds the lock last, and a read on the GUI thread gives up after a short wait.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from engine.imaging.slide_tiles import TileCache, TileGrid, TileKey

log = logging.getLogger(__name__)

#: Bytes of decoded tiles kept per open slide (about 1,000 tiles of 256 x 256 RGB).
CACHE_BYTES = 192 * 1024 * 1024
#: Threads reading tiles (reads are serialised on the file; the second thread converts).
READ_THREADS = 2
#: Longest wait of a read on the GUI thread (``read_region``) for the tile threads' lock, in s.
GUI_READ_WAIT_S = 2.0


class TileLoader(QObject):
    """The tiles of one open slide, read in the background.

    Args:
        reader: an open ``engine.imaging.slide.SlideReader`` (or anything with its ``levels``,
            ``dimensions``, ``downsamples`` and ``read_region``).
        cache_bytes: bound of the tile cache.
        parent: optional parent object.

    Signals:
        tile_loaded(TileKey): a tile is now in ``cache`` (emitted on the GUI thread).
        tile_failed(TileKey, str): a tile could not be read; the view keeps its fallback.
    """

    tile_loaded = Signal(object)
    tile_failed = Signal(object, str)

    def __init__(self, reader: Any, cache_bytes: int = CACHE_BYTES, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.reader = reader
        self.grid = TileGrid.of(reader)
        self.cache = TileCache(cache_bytes)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(READ_THREADS)
        self.dropped = 0  # requests dropped before reading because the view moved on
        self._lock = threading.Lock()  # guards _wanted and _in_flight
        self._read_lock = threading.Lock()  # one read of the file at a time
        self._wanted: set[TileKey] = set()
        self._in_flight: set[TileKey] = set()
        self._closed = False
        self._close_pending = False  # close the file as soon as no read holds it

    def request(self, keys: list[TileKey]) -> int:
        """Want exactly ``keys`` now (in this order of priority); start reading those not cached
        and not already being read. Returns how many reads were started."""
        started = []
        with self._lock:
            if self._closed:
                return 0
            self._wanted = set(keys)
            for key in keys:
                if key not in self._in_flight and key not in self.cache:
                    self._in_flight.add(key)
                    started.append(key)
        for key in started:
            self.pool.start(_TileRead(self, key))
        return len(started)

    @property
    def downsamples(self) -> tuple[float, ...]:
        """The slide's downsample per level (as ``SlideReader.downsamples``)."""
        return self.reader.downsamples

    def read_region(self, level: int, location: tuple[int, int], size: tuple[int, int]):
        """Read a region now, on the calling thread, between the tile reads (``SlideReader.read_region``).

        Raises:
            TimeoutError: the tile threads held the file for ``GUI_READ_WAIT_S``.
            RuntimeError: the file is being closed.
        """
        if not self._read_lock.acquire(timeout=GUI_READ_WAIT_S):
            raise TimeoutError(f"{self.reader!r}: the file stayed busy for {GUI_READ_WAIT_S:g} s")
        try:
            if self._close_pending:
                raise RuntimeError(f"{self.reader!r}: the slide is being closed")
            region = self.reader.read_region(level, location, size)
        finally:
            self._read_lock.release()
            self._try_close()
        return region

    def pending(self) -> int:
        """Reads queued or running."""
        with self._lock:
            return len(self._in_flight)

    def shutdown(self) -> None:
        """Drop every queued read; a running one ends on its own and its tile is not announced."""
        with self._lock:
            self._closed = True
            self._wanted = set()
        self.pool.clear()

    def close_reader(self) -> None:
        """Shut down and close the slide file: now if no read holds it, else as soon as the
        running read lets it go (on that read's thread). Never waits."""
        self.shutdown()
        with self._lock:
            self._close_pending = True
        self._try_close()

    def _try_close(self) -> None:
        """Close the file if a close is pending and no read holds it (whoever gets here first)."""
        if not self._close_pending or not self._read_lock.acquire(blocking=False):
            return  # no close asked, or the holder calls this again when it lets go
        try:
            if not getattr(self.reader, "closed", False):
                self.reader.close()
        finally:
            self._read_lock.release()

    # -- called on the worker threads ----------------------------------------------------------
    def _still_wanted(self, key: TileKey) -> bool:
        with self._lock:
            if key in self._wanted and not self._closed:
                return True
            self._in_flight.discard(key)
            self.dropped += 1
            return False

    def _read(self, key: TileKey) -> None:
        try:
            with self._read_lock:
                if not self._still_wanted(key):
                    return
                location, size = self.grid.region(key)
                rgb = self.reader.read_region(key.level, location, size)
        except Exception as exc:  # a damaged tile must not end the thread; the view says it
            self._failed(key, exc)
            return
        finally:
            self._try_close()  # a close asked for while this read held the file
        try:
            height, width = rgb.shape[:2]
            image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
            self.cache.put(key, image, nbytes=image.sizeInBytes())
        except Exception as exc:  # noqa: BLE001 (as above)
            self._failed(key, exc)
            return
        with self._lock:
            self._in_flight.discard(key)
            closed = self._closed
        if not closed:
            self.tile_loaded.emit(key)

    def _failed(self, key: TileKey, exc: Exception) -> None:
        with self._lock:
            self._in_flight.discard(key)
        log.warning("slide tile %s not read: %s", key, exc)
        self.tile_failed.emit(key, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


class _TileRead(QRunnable):
    def __init__(self, loader: TileLoader, key: TileKey) -> None:
        super().__init__()
        self._loader, self._key = loader, key

    def run(self) -> None:
        self._loader._read(self._key)
