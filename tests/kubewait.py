"""Waiting for cluster state with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_for(probe: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> T:
    """Call ``probe`` until it returns something truthy and return that; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: object = None
    last_exc: BaseException | None = None
    while True:
        try:
            last = probe()
            last_exc = None
            if last:
                return last  # type: ignore[return-value]
        except Exception as e:  # noqa: BLE001 - reported below if the deadline passes
            last_exc = e
        if time.monotonic() >= deadline:
            detail = f"last exception: {last_exc!r}" if last_exc else f"last value: {last!r}"
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; {detail}")
        time.sleep(interval)


def wait_until_refused(call: Callable[[], object], marker: str, *, timeout: float = 30.0) -> None:
    """Until ``call`` (a server-side dry run: nothing is written) is refused with 403 and ``marker``
    in the error: an admission policy is enforced a moment after it is created."""
    from kubernetes.client import ApiException

    def refused() -> bool:
        try:
            call()
        except ApiException as e:
            return e.status == 403 and marker in (e.body or "")
        return False

    wait_for(refused, timeout=timeout, interval=0.2, what=f"refused by {marker}")


#: Bounds of :func:`events_since`: one window, at most this many events.
MAX_WINDOW_EVENTS = 10_000


def events_since(list_call: Callable[..., object], *args: object, resource_version: str, seconds: int,
                 **kwargs: object) -> list[tuple[str, dict]]:
    """Every watch event of ``list_call(*args, **kwargs)`` after ``resource_version``, until the
    API server ends the watch ``seconds`` later: (type, object as a dict).

    Why: "X was not written" checked by one read looks at one instant. A watch that starts at a
    resourceVersion read *before* the window replays every write since, so a write that happened
    (and maybe was undone) anywhere between that read and the end of the window is seen. The
    caller narrows ``list_call`` (namespace, ``field_selector``) to the objects it speaks for. (To
    record every version through a whole test instead, see ``rotation_support.watch_versions``.)
    """
    from kubernetes import watch

    seen: list[tuple[str, dict]] = []
    w = watch.Watch()
    stream = w.stream(list_call, *args, resource_version=resource_version, timeout_seconds=seconds,
                      _request_timeout=seconds + 30, allow_watch_bookmarks=False, **kwargs)
    try:
        for event in stream:
            obj = event["object"]
            seen.append((event["type"], obj if isinstance(obj, dict) else obj.to_dict()))
            if len(seen) >= MAX_WINDOW_EVENTS:
                raise AssertionError(f"more than {MAX_WINDOW_EVENTS} events in {seconds}s: narrow the watch")
    finally:
        w.stop()
    return seen


def policy_gone(custom_api, name: str) -> bool:
    """True once the CertificatePolicy ``name`` no longer exists (its finalizers ran); other API
    errors are raised, not read as "gone"."""
    from kubernetes.client import ApiException

    from certpolicy import GROUP, PLURAL, VERSION

    try:
        custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False
