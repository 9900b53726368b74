"""Executors run a function over batches, in order, with bounded work in flight.

The runner hands an executor a picklable *worker spec* (how to build the operators) and an
iterator of batches; the executor builds the operators once per worker and yields results in input
order. The runner calls `map` twice with the same worker spec (pass 1 runs the operators, pass 2
writes the outputs), so an executor keeps its workers, and what `init` built, from one call to the
next until `close`. `LocalExecutor` uses processes on this machine; a Ray executor can implement
the same two methods (`map`, `close`) without touching operators or the runner.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

_STATE: dict[str, Any] = {}


class Executor(Protocol):
    """What the runner needs from an executor."""

    def map(
        self,
        init: Callable[[Any], Any],
        init_arg: Any,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
    ) -> Iterator[Any]:
        """Call `init(init_arg)` once per worker (once per executor for the same `init` and
        `init_arg`), then yield `fn(state, item)` in input order."""
        ...

    def close(self) -> None:
        """Stop the workers."""
        ...


def _worker_init(init: Callable[[Any], Any], init_arg: Any) -> None:
    _STATE["state"] = init(init_arg)


def _worker_call(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_STATE["state"], item)


class LocalExecutor:
    """Runs in this process (`workers=1`) or in a pool of spawned processes.

    At most `2 * workers` batches are in flight, so memory stays bounded however large the input.
    """

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))
        self._pool: Any = None
        self._key: Any = None  # (init, init_arg) the workers were built with
        self._state: Any = None  # workers=1: what init built

    def map(
        self,
        init: Callable[[Any], Any],
        init_arg: Any,
        fn: Callable[[Any, Any], Any],
        items: Iterable[Any],
    ) -> Iterator[Any]:
        key = (init, id(init_arg))
        if key != self._key:
            self.close()
        if self.workers == 1:
            if self._key is None:
                self._state, self._key = init(init_arg), key
            for item in items:
                yield fn(self._state, item)
            return
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._pool = ctx.Pool(self.workers, initializer=_worker_init, initargs=(init, init_arg))
            self._key = key
        pending: deque[Any] = deque()
        try:
            for item in items:
                pending.append(self._pool.apply_async(_worker_call, (fn, item)))
                while len(pending) >= 2 * self.workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
        except BaseException:
            self.close()  # a failed or abandoned map leaves no work running
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        self._key = self._state = None
