"""The paginated LIST fetches the next page while the store parses this one (``ListWatcher._pages``).

A stand-in for the API server's paging here, not the API: what is tested is the order of the
calls and what reaches the store; the real LIST is covered by every integration test.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from certpolicy.inventory.recordstore import RecordStore
from certpolicy.inventory.watch import ListWatcher

DEADLINE = 5.0


class PagedRaw:
    """Three pages of two items; ``requested[i]`` is set when page i is asked for; a page in
    ``hold`` is not answered until ``release`` is set; a page in ``fail`` raises."""

    def __init__(self, *, hold: frozenset[int] = frozenset(), fail: frozenset[int] = frozenset()) -> None:
        self.requested = [threading.Event() for _ in range(3)]
        self.release = threading.Event()
        self.hold, self.fail = hold, fail
        self.calls: list[dict[str, Any]] = []

    def get(self, path: str, query: Any = None, **_: Any) -> dict:
        self.calls.append(dict(query))
        i = int(query.get("continue", "0"))
        self.requested[i].set()
        if i in self.hold:
            self.release.wait(DEADLINE)
        if i in self.fail:
            raise OSError(f"page {i} refused")
        meta: dict[str, Any] = {"resourceVersion": f"rv-{i}"}
        if i < 2:
            meta["continue"] = str(i + 1)
        return {"metadata": meta, "items": [{"metadata": {"namespace": "ns", "name": f"s{i}-{k}"}} for k in range(2)]}


def watcher(raw: PagedRaw) -> ListWatcher:
    return ListWatcher(raw, "/api/v1/secrets", RecordStore("Secret", lambda obj: obj), name="t",  # type: ignore[arg-type]  # a stand-in for RawClient
                       query={"fieldSelector": "type=kubernetes.io/tls"}, page_size=2)


def test_the_next_page_is_requested_before_this_page_is_consumed():
    raw = PagedRaw()
    pages = watcher(raw)._pages()
    first = next(pages)
    assert first["metadata"]["name"] == "s0-0"
    # page 0 is not consumed yet (one item left): page 1 is already on its way
    assert raw.requested[1].wait(DEADLINE)
    rest = list(pages)
    assert [o["metadata"]["name"] for o in [first, *rest]] == ["s0-0", "s0-1", "s1-0", "s1-1", "s2-0", "s2-1"]
    assert [c.get("continue") for c in raw.calls] == [None, "1", "2"]
    assert all(c["limit"] == 2 and c["fieldSelector"] == "type=kubernetes.io/tls" for c in raw.calls)


def test_the_list_hands_every_item_to_the_store_and_keeps_the_last_pages_version():
    raw = PagedRaw()
    lw = watcher(raw)
    lw._list()
    assert lw.synced.is_set() and lw.resource_version == "rv-2"
    assert sorted(n for _ns, n in lw.store._records) == ["s0-0", "s0-1", "s1-0", "s1-1", "s2-0", "s2-1"]  # type: ignore[attr-defined]


def test_a_page_that_fails_raises_to_the_lister_and_nothing_is_synced():
    raw = PagedRaw(fail=frozenset({1}))
    lw = watcher(raw)
    with pytest.raises(OSError, match="page 1 refused"):
        lw._list()
    assert not lw.synced.is_set() and lw.resource_version is None


def test_a_lister_that_stops_early_does_not_wait_for_the_page_in_flight():
    raw = PagedRaw(hold=frozenset({1}))
    pages = watcher(raw)._pages()
    next(pages)
    assert raw.requested[1].wait(DEADLINE)
    started = time.monotonic()
    pages.close()
    assert time.monotonic() - started < DEADLINE / 2
    raw.release.set()
    assert not raw.requested[2].is_set()
