"""The engine's caches: bounded, first-in-first-out, and all cleared or swept from one place."""

import subprocess
import sys

import certgen
from certpolicy.pki import cache
from certpolicy.pki.cache import FifoCache, Live
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.inspect import summarize
from certpolicy.pki.load import load_certificates


def test_eviction_is_first_in_first_out():
    c: FifoCache[str, int] = FifoCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a hit does not reorder
    c.put("c", 3)
    assert "a" not in c and c.get("b") == 2 and c.get("c") == 3 and len(c) == 2


def test_one_sweep_drops_what_is_no_longer_live_from_every_registered_cache():
    kept, gone = certgen.root("cache kept"), certgen.root("cache gone")
    for ca in (kept, gone):
        summarize(load_certificates(certgen.pem(ca)).certificates[0])
    live = Live(frozenset({fingerprint(kept.cert)}), frozenset())
    assert cache.sweep(live) > 0
    summaries = next(c for c in cache.registered() if c.name == "summaries")
    assert fingerprint(kept.cert) in summaries and fingerprint(gone.cert) not in summaries
    cache.clear_all()
    assert all(len(c) == 0 for c in cache.registered())


def test_an_unregistered_cache_is_left_alone():
    mine: FifoCache[str, int] = FifoCache(4)
    mine.put("x", 1)
    cache.sweep(Live())
    cache.clear_all()
    assert mine.get("x") == 1 and mine not in cache.registered()


def test_loading_certificates_does_not_import_the_summaries_module():
    """pki.load and pki.inspect no longer import each other: fingerprints and key descriptions
    have modules of their own."""
    code = "import sys, certpolicy.pki.load; print('certpolicy.pki.inspect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_reserve_grows_the_bound_up_to_the_cap_and_never_shrinks_it():
    c: FifoCache[int, int] = FifoCache(4)
    c.reserve(2)
    assert c.maxsize == 4
    c.reserve(10)
    for i in range(10):
        c.put(i, i)
    assert len(c) == 10 and c.get(0) == 0
    c.reserve(cache.MAX_CAPACITY * 2)
    assert c.maxsize == cache.MAX_CAPACITY


def test_fit_sizes_only_the_caches_that_scale_with_the_working_set():
    import certpolicy.policy.evaluate  # noqa: F401 - registers the "checks" cache, whatever ran before
    scaled: FifoCache[int, int] = FifoCache(4, name="test-scaled", per_secret=2)
    fixed: FifoCache[int, int] = FifoCache(4, name="test-fixed")
    cache.fit(100)
    assert scaled.maxsize == 200 and fixed.maxsize == 4
    per_pass = {c.name for c in cache.registered() if c.per_secret}
    assert {"summaries", "fingerprints", "checks"} <= per_pass, "the caches every pass reads per Secret must scale"
