import pytest


def test_ray_init_is_forbidden_in_unit_tests() -> None:
    import ray

    with pytest.raises(AssertionError, match="must not start Ray"):
        ray.init()
