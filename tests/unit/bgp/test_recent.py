from bgp_orchestrator.bgp.recent import Recent


def test_keeps_what_was_used_within_the_last_size_insertions() -> None:
    cache: Recent[str, int] = Recent(2)
    cache.remember("a", 1)
    cache.remember("b", 2)
    cache.remember("c", 3)  # the young generation was full: a and b are now old
    assert cache.recall("a") == 1  # found in the old generation, moved back to the young
    cache.remember("d", 4)  # full again: c and a become old, b is dropped
    assert cache.recall("b") is None
    assert cache.recall("a") == 1 and cache.recall("c") == 3 and cache.recall("d") == 4
    assert len(cache) <= 4


def test_the_young_generation_is_what_hot_paths_read() -> None:
    cache: Recent[str, int] = Recent(10)
    cache.remember("x", 7)
    assert cache.young.get("x") == 7
