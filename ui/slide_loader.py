"""``TileLoader``: reads a slide's tiles on a thread pool, never on the GUI thread, and keeps them.

The view says which tiles it wants (``request``); each tile not cached and not already on its
way is read by a ``QRunnable`` (``SlideReader.read_region`` under one lock: the readers are not
known to be safe to share between threads), turned into a ``QImage`` there, cached
(``engine.imaging.slide_tiles.TileCache``) and announced by ``tile_loaded`` on the GUI thread.
A request replaces the wanted set: a queued read of a tile no longer wanted is dropped before
it touches the file.
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
        """Read a region now, on the calling thread, between the tile reads (``SlideReader.read_region``)."""
        with self._read_lock:
            return self.reader.read_region(level, location, size)

    def pending(self) -> int:
        """Reads queued or running."""
        with self._lock:
            return len(self._in_flight)

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Drop every queued read and wait for the running ones (before the reader is closed)."""
        with self._lock:
            self._closed = True
            self._wanted = set()
        self.pool.clear()
        self.pool.waitForDone(wait_ms)

    def close_reader(self) -> None:
        """Shut down, then close the slide file once no read holds it (a read still running after
        ``shutdown``'s wait finishes first; any read after it finds the loader closed)."""
        self.shutdown()
        with self._read_lock:
            self.reader.close()

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
            height, width = rgb.shape[:2]
            image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
            self.cache.put(key, image, nbytes=image.sizeInBytes())
        except Exception as exc:  # a damaged tile must not end the thread; the view says it
            with self._lock:
                self._in_flight.discard(key)
            log.warning("slide tile %s not read: %s", key, exc)
            self.tile_failed.emit(key, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        with self._lock:
            self._in_flight.discard(key)
        self.tile_loaded.emit(key)


class _TileRead(QRunnable):
    def __init__(self, loader: TileLoader, key: TileKey) -> None:
        super().__init__()
        self._loader, self._key = loader, key

    def run(self) -> None:
        self._loader._read(self._key)
