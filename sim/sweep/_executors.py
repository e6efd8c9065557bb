"""Executors: where cells run. In-process, a local process pool, or a Ray cluster.

Every executor maps one picklable function over items and yields ``(item, result)`` as
results arrive (in any order). At most ``window`` items are in flight at once, so a sweep of
millions of cells neither builds millions of futures nor holds every result in memory.
Results do not depend on the executor: each cell is seeded by its session ids.
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from abr.errors import InputError, unknown_name

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "ProcessExecutor", "RayExecutor", "get_executor"]


class Executor(ABC):
    """Runs ``fn`` over items.

    :param workers: parallel workers (default: all local cores; ignored in-process).
    """

    name: ClassVar[str]

    def __init__(self, workers: int | None = None):
        if workers is not None and workers < 1:
            raise InputError(f"workers must be >= 1, got {workers}")
        self.workers = workers or os.cpu_count() or 1

    @property
    def window(self) -> int:
        """Most items in flight at once."""
        return 4 * self.workers

    @abstractmethod
    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, fn(item))`` for every item, in completion order."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - a hook with a harmless default, not abstract
        """Release workers (a no-op where there are none)."""


class LocalExecutor(Executor):
    """Runs every item in this process, one after the other (the reference)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        super().__init__(1)

    def map(self, fn, items):
        for item in items:
            yield item, fn(item)


def _die_with_parent(parent: int | None) -> None:
    """Worker initializer: on Linux ask the kernel to SIGKILL this worker when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``), so a ``kill -9`` of the driver leaves no workers running; exit
    at once if the parent is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if parent is not None and os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


class ProcessExecutor(Executor):
    """A :class:`concurrent.futures.ProcessPoolExecutor` over the local cores. Its workers die
    with their parent process (Linux: ``PR_SET_PDEATHSIG``), even when it is killed with SIGKILL.

    :param start_method: ``fork``, ``forkserver`` or ``spawn``; None picks the platform's
        default, except that ``forkserver`` is used once torch is imported in this process
        (e.g. by an ``rl:`` policy): a forked child of a process whose torch thread pools have
        started can hang. ``fork`` starts in well under a second here, ``forkserver`` and
        ``spawn`` take seconds (every worker imports numpy, pandas and the simulator again).
    """

    name = "process"

    def __init__(self, workers: int | None = None, start_method: str | None = None):
        super().__init__(workers)
        self.start_method = start_method
        self._pool = None

    def _context(self):
        import multiprocessing
        import sys

        method = self.start_method
        if method is None and "torch" in sys.modules and "forkserver" in multiprocessing.get_all_start_methods():
            method = "forkserver"
        return multiprocessing.get_context(method)

    def map(self, fn, items):
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        if self._pool is None:
            ctx = self._context()
            # a forkserver's workers are children of the forkserver, which exits with this process
            parent = os.getpid() if ctx.get_start_method() != "forkserver" else None
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_die_with_parent,
                                             initargs=(parent,))  # fmt: skip
        pending: dict = {}
        it = iter(items)
        try:
            while True:
                for item in it:
                    pending[self._pool.submit(fn, item)] = item
                    if len(pending) >= self.window:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield pending.pop(fut), fut.result()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Ray tasks, on a local Ray instance or an existing cluster (``address``).

    Ray is imported only here. Without ``address`` and with no Ray connection in this process,
    a local instance with ``workers`` CPUs is started (and stopped by :meth:`close`). With
    ``address`` (``auto``, ``ray://host:10001``, ``host:6379``) the sweep runs on that cluster and
    ships the ``abr``, ``policies``, ``sim`` and ``traces`` packages of this checkout to its
    workers (Ray ``runtime_env`` ``py_modules``), so every worker runs the driver's code; the
    cluster's Python needs promptabr's dependencies (numpy, pandas, gymnasium; torch only for
    ``rl:`` policies), e.g. ``pip install promptabr[ray]`` there. Trace and ladder files are
    read by the workers: give paths that exist on every node (a shared file system).
    An existing connection (``ray.init`` done by the caller) is used as it is. A cluster started
    with token authentication (the default of recent ``ray start``) needs ``RAY_AUTH_MODE=token``
    in the driver's environment as well.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None):
        super().__init__(workers)
        self.address = address
        self._started = False
        self._remote: dict = {}

    def _connect(self):
        try:
            import ray
        except ImportError:
            raise InputError('the ray executor needs Ray: pip install "ray[default]" (or promptabr[ray])') from None
        if not ray.is_initialized():
            if self.address:
                import abr
                import policies
                import sim
                import traces

                try:
                    ray.init(address=self.address, runtime_env={"py_modules": [abr, policies, sim, traces]},
                             log_to_driver=False)  # fmt: skip
                except (ConnectionError, RuntimeError) as exc:
                    raise InputError(
                        f"cannot connect to the Ray cluster at {self.address!r} ({str(exc).splitlines()[0]}); "
                        "a cluster with token authentication also needs RAY_AUTH_MODE=token here"
                    ) from None
            else:
                try:
                    ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
                except (ConnectionError, RuntimeError) as exc:
                    where = os.environ.get("RAY_ADDRESS")
                    hint = f"; RAY_ADDRESS={where!r} is set: unset it to start a local Ray" if where else ""
                    raise InputError(f"cannot start Ray ({str(exc).splitlines()[0]}){hint}") from None
            self._started = True
        return ray

    @property
    def window(self) -> int:
        if self.address and self._started:
            import ray

            return 4 * max(int(ray.cluster_resources().get("CPU", 1)), 1)
        return super().window

    def map(self, fn, items):
        ray = self._connect()
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = ray.remote(num_cpus=1)(fn)
        pending: dict = {}
        it = iter(items)
        window = self.window
        try:
            while True:
                for item in it:
                    pending[remote.remote(item)] = item
                    if len(pending) >= window:
                        break
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), ray.get(ref)
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
            self._remote.clear()


EXECUTORS: dict[str, type[Executor]] = {cls.name: cls for cls in (LocalExecutor, ProcessExecutor, RayExecutor)}


def get_executor(name: str, workers: int | None = None, ray_address: str | None = None) -> Executor:
    """An executor by name (``local``, ``process``, ``ray``)."""
    if name not in EXECUTORS:
        raise unknown_name("executor", name, EXECUTORS)
    if ray_address and name != "ray":
        raise InputError(f"--ray-address needs --executor ray, got --executor {name}")
    if name == "ray":
        return RayExecutor(workers, ray_address)
    return EXECUTORS[name](workers)
