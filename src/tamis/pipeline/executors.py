"""Executors run a function over batches, in order, with bounded work in flight.

The runner hands an executor a picklable *worker spec* (how to build the operators) and an
iterator of batches; the executor builds the operators once per worker and yields results in input
order. `LocalExecutor` uses processes on this machine; a Ray executor can implement the same two
methods (`map`, `close`) without touching operators or the runner.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import spawn
from typing import Any, Protocol

from tamis.errors import TamisError

_STATE: dict[str, Any] = {}
_PATCH_LOCK = threading.Lock()


class Executor(Protocol):
    """What the runner needs from an executor."""

    def map(
        self,
        init: Callable[[Any], Any],
        init_arg: Any,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
    ) -> Iterator[Any]:
        """Call `init(init_arg)` once per worker, then yield `fn(state, item)` in input order."""
        ...

    def close(self) -> None: ...


def _worker_init(init: Callable[[Any], Any], init_arg: Any) -> None:
    parent = mp.parent_process()
    if parent is not None:  # a killed run leaves no worker behind, waiting for work forever
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    _STATE["state"] = init(init_arg)
    # a batch makes ~100,000 short-lived containers (records, signal dicts) and frees them all;
    # at the default threshold (700) the collector runs ~150 times a batch for no cycle to find
    gc.freeze()  # the modules and models loaded so far are never garbage
    gc.set_threshold(20_000, 20, 20)


def _exit_with(parent: Any) -> None:
    parent.join()  # returns once the parent process is gone
    os._exit(1)


def _worker_call(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_STATE["state"], item)


@contextmanager
def _without_main() -> Iterator[None]:
    """Processes spawned meanwhile do not re-run the caller's `__main__` module.

    Python's spawn start method runs the main script again in every worker, so that what it
    defines can be unpickled there. The workers here need only tamis and the operators' modules
    (imported by name), so a script that calls `tamis.clean(..., workers=2)` without an
    `if __name__ == "__main__":` guard works, and no worker imports the CLI it does not use.
    """
    with _PATCH_LOCK:  # runs in two threads must not restore each other's replacement
        original = spawn.get_preparation_data

        def prepare(name: str) -> dict[str, Any]:
            data = original(name)
            data.pop("init_main_from_name", None)
            data.pop("init_main_from_path", None)
            return data

        spawn.get_preparation_data = prepare
        try:
            yield
        finally:
            spawn.get_preparation_data = original


class LocalExecutor:
    """Runs in this process (`workers=1`) or in a pool of spawned processes.

    At most `2 * workers` batches are in flight, so memory stays bounded however large the input.
    `main`: the workers need the caller's `__main__` module (an operator defined in the script
    that runs): they re-run it, so the call must stand under `if __name__ == "__main__":`.
    A worker that dies (an error while it starts, killed for memory) stops the run with an error
    instead of leaving it waiting.
    """

    def __init__(self, workers: int = 1, main: bool = False):
        self.workers = max(1, int(workers))
        self.main = main
        self._pool: ProcessPoolExecutor | None = None
        self._leaving: ProcessPoolExecutor | None = None  # told to leave, not yet gone

    def map(
        self,
        init: Callable[[Any], Any],
        init_arg: Any,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
    ) -> Iterator[Any]:
        self.close()  # the workers of an earlier map, if any, are gone first
        if self.workers == 1:
            state = init(init_arg)
            for item in items:
                yield fn(state, item)
            return
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_worker_init,
            initargs=(init, init_arg),
        )
        pending: deque[Future[Any]] = deque()
        try:
            for item in items:
                pending.append(self._submit(fn, item))
                while len(pending) >= 2 * self.workers:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())
            # all done: the workers leave (~0.04 s, their interpreters' teardown) while the
            # caller goes on; close() waits for them
            self._leaving, self._pool = self._pool, None
            self._leaving.shutdown(wait=False)
        finally:
            self._kill()

    def _submit(self, fn: Callable[[Any, Any], Any], item: Any) -> Future[Any]:
        assert self._pool is not None
        if self.main:
            return self._pool.submit(_worker_call, fn, item)
        with _without_main():  # a submit may spawn a worker (until all are started)
            return self._pool.submit(_worker_call, fn, item)

    def _result(self, future: Future[Any]) -> Any:
        try:
            return future.result()
        except BrokenProcessPool as e:
            hint = ""
            if self.main:
                hint = (
                    "; the recipe uses an operator defined in the script that runs, which every "
                    'worker runs again: call tamis.clean under `if __name__ == "__main__":`, or '
                    "define the operator in a module the script imports"
                )
            raise TamisError(
                "a worker process stopped before its work was done (its error, if it gave one, "
                f"is printed above; or it was killed, e.g. for memory){hint}"
            ) from e

    def close(self) -> None:
        """Stop the workers: kill them on an error or an early stop; after a finished `map`, wait
        until they have left (they exit cleanly, their locks released: a model's progress bar
        makes one)."""
        self._kill()
        leaving, self._leaving = self._leaving, None
        if leaving is not None:
            leaving.shutdown(wait=True)

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # the processes, taken before shutdown forgets them (Python 3.14 has terminate_workers)
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
