"""Where units of work run: this process, a local process pool, or a Dask cluster.

Every executor maps :class:`lpm.sweep.units.Unit` objects to their records
(:func:`lpm.sweep.units.run_unit`) and hands them back to the client, which
alone writes files; so no executor needs a shared file system.

==========================  ==================================================
``InProcess()``             this process, one unit after another
``LocalPool(n)``            ``--jobs n``: n local worker processes (a fork
                            server with lpm preloaded, or spawned), started
                            on first use; a worker that dies takes its units
                            to a fresh pool (at most :data:`ATTEMPTS` tries)
``DaskExecutor(address)``   ``--cluster tcp://host:8786``: a running Dask
                            scheduler; a worker that dies has its units rerun
                            elsewhere by Dask
``DaskExecutor(workers=n)`` ``--cluster local:n``: a Dask ``LocalCluster`` of n
                            one-thread worker processes, started on first use
==========================  ==================================================

:func:`make_executor` turns the command-line choice into one of these;
``run_sweep(..., executor=...)`` also takes an executor, one of those
strings, or a ready ``distributed.Client``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from typing import Any, Iterator
from urllib.parse import urlsplit

from ..core.errors import LPMInputError, check_number, show_warning_one_line
from .units import Unit, limit_threads, run_unit, single_thread

#: how often a unit may be handed to a fresh local pool after its worker died
ATTEMPTS = 3
#: seconds to wait for a Dask scheduler to answer
CONNECT_TIMEOUT = 10.0
INSTALL_HINT = "Dask distributed installed (pip install 'lpm[distributed]')"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Executor:
    """Runs units and yields ``(unit, records or the exception that lost them)``."""

    #: parallel slots
    workers: int = 1
    #: whether the workers see this machine's files (then run folders are written in place)
    shares_files: bool = True
    #: whether the workers are running already (no start-up cost to use them)
    started: bool = True

    def open(self) -> "Executor":
        """Check the executor can be used (connect to a scheduler); writes nothing."""
        return self

    def start(self) -> None:
        """Start the workers now if they start lazily (before a progress bar is drawn)."""

    def run(self, units: list[Unit]) -> Iterator[tuple[Unit, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self) -> "Executor":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


class InProcess(Executor):
    """This process, one unit after another, with one BLAS/torch thread."""

    def run(self, units):
        with single_thread():
            for unit in units:
                yield unit, run_unit(unit)

    def describe(self) -> str:
        return "in-process"


#: seconds between a worker's checks that the process that started it is still alive
PARENT_CHECK_S = 0.5


def _init_worker(client_pid: int | None = None) -> None:
    """A pool worker: one thread, Ctrl-C is the client's to handle, and it exits on its own
    when the client dies (see :func:`exit_with_parent`)."""
    import warnings

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.showwarning = show_warning_one_line  # a cell's warning is one line on the terminal, too
    limit_threads()
    exit_with_parent(client_pid)


def exit_with_parent(client_pid: int | None = None, every: float = PARENT_CHECK_S) -> threading.Thread:
    """Watch, from a daemon thread, that this process's parent (and ``client_pid``, the process
    that owns the pool) are alive, and exit at once when either is gone.

    A client killed with SIGKILL cannot stop its workers; without this they would wait for
    work forever: they hold their own queue's pipes open, so they never see it close, and
    they hold the fork server's pipe too, so it never exits either (the fork server exits,
    and the resource tracker after it, once the workers are gone). A worker started by the
    fork server is its child, so the client's death is seen through ``client_pid`` (a
    zombie that its parent has not reaped yet counts as dead); a worker started directly
    also sees its parent change."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != parent or (client_pid is not None and not _alive(client_pid)):
                os._exit(1)  # noqa: SLF001 - no clean-up to run: the client that wanted the result is gone

    thread = threading.Thread(target=watch, name="lpm-exit-with-parent", daemon=True)
    thread.start()
    return thread


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - alive, owned by another user
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):  # not Linux: kill(pid, 0) is all there is
        return True
    return state not in (b"Z", b"X")


#: imported once by the fork server, so that workers start without re-importing them
_PRELOAD = ["lpm.sweep.units", "lpm.sweep.train"]


def _context():
    """A fork server with lpm preloaded where the OS has one (workers then start
    in well under a second); plain spawn elsewhere. Never a bare fork of this
    process, whose torch/BLAS threads a child must not inherit."""
    import multiprocessing  # only a local pool needs it (keeps `lpm sweep` quick to start)

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


class LocalPool(Executor):
    """``--jobs n``: n worker processes on this machine."""

    def __init__(self, workers: int):
        self.workers = check_jobs("jobs", workers)
        self._pool = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    def start(self) -> None:
        self._get_pool()

    def _get_pool(self):
        from concurrent.futures import ProcessPoolExecutor  # only a local pool needs it

        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_context(),
                                             initializer=_init_worker, initargs=(os.getpid(),))
        return self._pool

    def run(self, units):
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        attempts: Counter[int] = Counter()
        pending = list(units)
        while pending:
            pool, retry = self._get_pool(), []
            futures = {pool.submit(run_unit, u): u for u in pending}
            try:
                for fut in as_completed(futures):
                    unit = futures[fut]
                    try:
                        outcome = fut.result()
                    except BrokenProcessPool as exc:  # a worker died (killed, out of memory)
                        attempts[id(unit)] += 1
                        if attempts[id(unit)] < ATTEMPTS:
                            retry.append(unit)
                            continue
                        outcome = RuntimeError(f"its worker process died {ATTEMPTS} times ({exc})")
                    except Exception as exc:  # noqa: BLE001 - e.g. a record that cannot be pickled
                        outcome = exc
                    yield unit, outcome
            except BaseException:
                self._terminate()
                raise
            if retry:
                self._terminate()
            pending = retry

    def _terminate(self) -> None:
        """Stop the workers now (Ctrl-C, or a broken pool), cancelling what is queued."""
        if self._pool is None:
            return
        processes = list(getattr(self._pool, "_processes", {}).values())  # no public way before 3.14
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(timeout=5)
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def describe(self) -> str:
        return f"local pool of {self.workers} processes"


# ------------------------------------------------------------------ Dask
def _distributed(value: str):
    try:
        import distributed  # optional extra (pip install 'lpm[distributed]'): loaded only for --cluster
    except ImportError:
        raise LPMInputError("cluster", value, f"used with {INSTALL_HINT}") from None
    return distributed


def run_unit_in_worker(unit: Unit) -> list[dict]:
    """A Dask task: one thread in this worker process from now on, then the unit."""
    import warnings

    warnings.showwarning = show_warning_one_line
    limit_threads()
    return run_unit(unit)


class DaskExecutor(Executor):
    """A Dask cluster: a running scheduler (``address``), a ``LocalCluster`` of
    ``workers`` processes started on first use, or a ready ``client``."""

    def __init__(self, address: str | None = None, workers: int | None = None, client=None,
                 timeout: float = CONNECT_TIMEOUT, echo=None):
        self.address, self.client, self.timeout = address, client, timeout
        self.local = address is None and client is None
        self.workers = workers or (1 if client is None else max(1, len(client.scheduler_info()["workers"])))
        self.shares_files = self.local  # a LocalCluster's workers run on this machine
        self._cluster = None
        self._own_client = client is None
        self._echo = echo if echo is not None else (lambda text: print(text, file=sys.stderr))
        self._futures: list = []

    @property
    def started(self) -> bool:
        return self.client is not None

    def open(self) -> "DaskExecutor":
        _distributed(self.address or f"local:{self.workers}")
        if self.client is None and self.address is not None:
            self._connect()
        return self

    def _connect(self) -> None:
        distributed = _distributed(self.address)
        _check_reachable(self.address, self.timeout)
        try:
            self.client = distributed.Client(self.address, timeout=self.timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise _unreachable(self.address, f"no Dask scheduler answered within {self.timeout:g} s: {exc}") from None
        self.workers = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))
        self._announce()

    def start(self) -> None:
        """Start the LocalCluster (or connect) if not done yet; print the dashboard address once."""
        if self.client is not None:
            return
        if not self.local:
            self._connect()
            return
        import logging

        import dask

        distributed = _distributed(f"local:{self.workers}")
        # no statistical profiler in the workers: sampling every cell's stack 100 times a second
        # costs CPU time next to GIL-bound cells (the dashboard's task stream still works)
        with dask.config.set({"distributed.worker.profile.enabled": False}), _sigint_ignored():
            self._cluster = distributed.LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                                     dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
        self.client = distributed.Client(self._cluster, set_as_default=False)
        self._announce()

    def _announce(self) -> None:
        """Print the dashboard address (once per executor: it connects once)."""
        served = "dashboard" in self.client.scheduler_info().get("services", {})
        self._echo(f"Dask dashboard: {self.client.dashboard_link}" if served
                   else "Dask dashboard: not served by this scheduler (it needs bokeh)")

    def run(self, units):
        self.start()
        distributed = _distributed(self.address or "local")
        futures = {self.client.submit(run_unit_in_worker, unit, pure=False): unit for unit in units}
        self._futures = list(futures)
        try:
            for fut in distributed.as_completed(futures, loop=self.client.loop):
                unit = futures[fut]
                try:
                    outcome = fut.result()
                except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: it killed workers repeatedly
                    outcome = exc
                yield unit, outcome
        finally:
            pending = [f for f in self._futures if not f.done()]
            if pending:
                self.client.cancel(pending)
            self._futures = []

    def close(self) -> None:
        if self.client is not None and self._own_client:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def describe(self) -> str:
        if self.local:
            return f"Dask LocalCluster of {self.workers} workers"
        return f"Dask scheduler {self.address}" if self.address else "Dask client"


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore Ctrl-C while worker processes are started, so that they inherit
    ignoring it: Ctrl-C is the client's to handle (it stops them itself)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _unreachable(address: str, why: str) -> LPMInputError:
    return LPMInputError("cluster", address, f"the address of a running Dask scheduler ({why})")


#: the address schemes a Dask scheduler is reached by (no scheme means tcp)
SCHEMES = ("tcp", "tls")


def check_address(cluster: str) -> str:
    """A well-formed scheduler address, ``[tcp|tls://]HOST:PORT`` (checked before any connection)."""
    text = str(cluster).strip()
    usage = "'local:N' or a scheduler address [tcp://|tls://]HOST:PORT, e.g. 'tcp://10.0.0.5:8786'"
    if not text or text.startswith("-") or any(c.isspace() for c in text):
        raise LPMInputError("cluster", cluster, usage)
    try:
        parts = urlsplit(text if "://" in text else f"tcp://{text}")
        port = parts.port
    except ValueError:  # a malformed IPv6 address, a port that is not a number or out of range
        raise LPMInputError("cluster", cluster, usage) from None
    if parts.scheme not in SCHEMES:
        raise LPMInputError("cluster", cluster, f"{usage} (the '{parts.scheme}' scheme is not supported; "
                                                "use " + " or ".join(SCHEMES) + ")")
    if not parts.hostname or port is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise LPMInputError("cluster", cluster, usage)
    return text


def _check_reachable(address: str, timeout: float) -> None:
    """Fail fast, naming the address, when nothing listens at a tcp:// address."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise LPMInputError("cluster", address, "'local:N' or a scheduler address HOST:PORT, e.g. "
                                                "'tcp://10.0.0.5:8786'")
    try:
        socket.create_connection((parts.hostname, port), timeout=min(timeout, 5.0)).close()
    except OSError as exc:
        raise _unreachable(address, f"nothing answered at {parts.hostname}:{port}: "
                                    f"{exc.strerror or type(exc).__name__}") from None


def make_executor(jobs: int | None = None, cluster: str | None = None) -> Executor:
    """The executor for ``--jobs`` / ``--cluster``: ``cluster`` is ``local:N``
    (N Dask workers here), ``local`` (one per usable core) or a scheduler address;
    otherwise ``jobs`` local processes (default: one per usable core; 1: this process)."""
    if cluster is not None:
        if jobs is not None:
            raise LPMInputError("jobs", jobs, "omitted with --cluster (the cluster's workers run the cells)")
        text = str(cluster).strip()
        if text == "local" or text.startswith("local:"):
            count = text.partition(":")[2]
            workers = usable_cores() if not count else _count(count, text)
            return DaskExecutor(workers=workers)
        return DaskExecutor(address=check_address(cluster))
    jobs = usable_cores() if jobs is None else check_jobs("jobs", jobs)
    return InProcess() if jobs == 1 else LocalPool(jobs)


def _count(text: str, whole: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise LPMInputError("cluster", whole, "'local:N' with N >= 1 workers, or a scheduler address")
    if value > max_workers():
        raise LPMInputError("cluster", whole, f"'local:N' with N <= {max_workers()} workers (16 per usable core "
                                              "of this machine)")
    return value


def max_workers() -> int:
    """The most local worker processes started: 16 per usable core (more only thrash, and a typo such as
    ``--jobs 1000000`` must not start a million processes)."""
    return 16 * usable_cores()


def check_jobs(name: str, value) -> int:
    jobs = check_number(name, value, low=1, integer=True)
    if jobs > max_workers():
        raise LPMInputError(name, value, f"an int >= 1 and <= {max_workers()} (16 worker processes per usable "
                                         "core of this machine)")
    return jobs


def as_executor(executor: Any = None, jobs: int | None = None) -> tuple[Executor, bool]:
    """An :class:`Executor` from what the API accepts, and whether the caller owns
    (must close) it: an executor, a ``--cluster`` string, a ``distributed.Client``, or
    ``None`` (then ``jobs``)."""
    if isinstance(executor, Executor):
        if jobs is not None:
            raise LPMInputError("jobs", jobs, "omitted when an executor is given")
        return executor, False
    if executor is None or isinstance(executor, str):
        return make_executor(jobs, executor), True
    if hasattr(executor, "submit") and hasattr(executor, "scheduler_info"):
        return DaskExecutor(client=executor), True
    raise LPMInputError("executor", executor, "an lpm.sweep executor, 'local:N', a Dask scheduler address or a "
                                              "distributed.Client")

