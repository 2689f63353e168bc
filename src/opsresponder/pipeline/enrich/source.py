"""The inventory file, kept loaded: reread when it changes (a cheap stat every few seconds) or on request
(SIGHUP); a file that fails to load leaves the previous inventory in use, logged and counted."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Final

import structlog

from opsresponder.pipeline.enrich.inventory import EMPTY, Inventory, InventoryError, parse_inventory
from opsresponder.pipeline.enrich.metrics import EnrichMetrics

log = structlog.get_logger(__name__)

# Size, modification time and inode: an editor that writes a new file and renames it changes the inode
# even when size and mtime (at the file system's resolution) stay the same.
Signature = tuple[int, int, int]

# Larger is a data set, not an inventory file; refusing it keeps one reload from eating the memory.
MAX_FILE_BYTES: Final = 64 * 1024 * 1024


def _signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read_inventory(path: Path, cache_size: int = 100_000) -> Inventory:
    """Read and parse the file (blocking; the watcher runs it in a thread).

    Raises:
        InventoryError: unreadable, too large, or invalid (the message says why).
    """
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise InventoryError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise InventoryError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return parse_inventory(data, cache_size)


class InventoryFile:
    """The inventory in use (`current`) and the task that keeps it in step with its file.

    `start` loads the file and starts polling its signature every `poll_interval` seconds; `reload`
    (SIGHUP) rereads it at once. Reading and parsing happen in a thread, so a large file never stalls the
    event loop; `current` is swapped whole, so a batch sees one inventory or the other, never a mix.
    """

    def __init__(
        self, path: Path | None, poll_interval: float, metrics: EnrichMetrics, cache_size: int = 100_000
    ) -> None:
        self.path = path
        self.current: Inventory = EMPTY
        self.loaded = False
        self._poll_interval = poll_interval
        self._metrics = metrics
        self._cache_size = cache_size
        self._signature: Signature | None = None
        self._poller: asyncio.Task[None] | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._again = False
        self._warned_missing = False

    async def start(self) -> None:
        await self.load()
        if self.path is not None and self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="asset-inventory-poll")

    async def stop(self) -> None:
        for task in (self._poller, self._reloading):
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
        self._poller = self._reloading = None

    def reload(self) -> None:
        """Reread the file soon (in a task); for SIGHUP. A reload already running runs once more after."""
        if self._reloading is not None and not self._reloading.done():
            self._again = True
            return
        self._reloading = asyncio.create_task(self._reload_until_settled(), name="asset-inventory-reload")

    async def load(self) -> bool:
        """Load the file now; True when the inventory in use changed. Never raises for a bad file."""
        path = self.path
        self.loaded = True
        if path is None:
            return False
        signature = _signature(path)
        if signature is None and self._signature is None and self.current is EMPTY:
            # No file yet (and none before): an empty inventory, said once; the poll picks the file up.
            if not self._warned_missing:
                log.warning("The asset inventory file does not exist; no asset matches.", path=str(path))
                self._warned_missing = True
            return False
        try:
            inventory = await asyncio.to_thread(read_inventory, path, self._cache_size)
        except InventoryError as e:
            # Remember the signature, so the same bad file is reported once, not at every poll.
            self._signature = signature
            self._metrics.reloads.labels("failed").inc()
            log.error(
                "The asset inventory file could not be loaded; the previous inventory stays in use.",
                path=str(path),
                error=str(e),
                entries_in_use=self.current.size,
            )
            return False
        self._signature = signature
        self.current = inventory
        self._metrics.reloads.labels("loaded").inc()
        self._metrics.entries.set(inventory.size)
        log.info("The asset inventory was loaded.", path=str(path), entries=inventory.size)
        return True

    async def _reload_until_settled(self) -> None:
        while True:
            self._again = False
            await self.load()
            if not self._again:
                return

    async def _poll(self) -> None:
        assert self.path is not None
        while True:
            await asyncio.sleep(self._poll_interval)
            if _signature(self.path) != self._signature:
                self.reload()
