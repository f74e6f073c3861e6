"""A store that times every call into a histogram: one place, instead of timers sprinkled
through the code that uses the store.

``timed(store, ...)`` wraps any ``Store``. Every coroutine method of the ``Store`` protocol
becomes one that measures the inner call with ``perf_counter`` and observes it under the
operation's name: two clock reads and one observation of a histogram child, made on the
operation's first call and then found in a dict. The inner method is looked up at each
call, so replacing it on the inner store (a test simulating an outage) still takes effect;
anything outside the protocol (a backend's own extras) is handed through untimed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any, cast

from twofold.errors import StoreUnavailable
from twofold.loop_metrics import HistogramChild
from twofold.metrics import Metrics
from twofold.store.base import Store

#: The operations a store offers: the coroutine methods of the protocol and its parts.
OPERATIONS: tuple[str, ...] = tuple(
    sorted(
        name
        for name, member in inspect.getmembers(Store, inspect.iscoroutinefunction)
        if not name.startswith("_")
    )
)

_Method = Callable[..., Coroutine[Any, Any, Any]]


class TimedStore:
    """``inner`` with its calls timed (build it with :func:`timed`)."""

    def __init__(self, inner: Store, backend: str, metrics: Metrics) -> None:
        self.inner = inner
        self._backend = backend
        self._metrics = metrics
        # Made on first use: an operation never called adds no series to the scrape.
        self._timers: dict[str, HistogramChild] = {}

    def __getattr__(self, name: str) -> Any:
        # Only reached for what the class does not define: a backend's own extras.
        return getattr(self.__dict__["inner"], name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(dir(self.inner)))

    def __repr__(self) -> str:
        return f"TimedStore({self.inner!r})"


def _timed_operation(name: str) -> _Method:
    async def operation(self: TimedStore, *args: Any, **kwargs: Any) -> Any:
        started = perf_counter()
        try:
            return await getattr(self.inner, name)(*args, **kwargs)
        except StoreUnavailable:
            self._metrics.store_failed(self._backend, name)
            raise
        finally:
            elapsed = perf_counter() - started
            timer = self._timers.get(name)
            if timer is None:
                timer = self._timers[name] = self._metrics.store_timer(self._backend, name)
            timer.observe(elapsed)

    operation.__name__ = operation.__qualname__ = name
    operation.__doc__ = getattr(Store, name).__doc__
    return operation


for _name in OPERATIONS:
    setattr(TimedStore, _name, _timed_operation(_name))


def timed(store: Store, backend: str, metrics: Metrics) -> Store:
    """``store`` with every call timed under ``backend`` (``sqlite``, ``postgresql``,
    ``redis``) in ``metrics``."""
    return cast(Store, TimedStore(store, backend, metrics))
