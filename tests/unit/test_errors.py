import pickle

import pytest

from bgp_orchestrator import errors
from bgp_orchestrator.api.problems import status_for

ALL = [
    errors.BgpoError,
    errors.InvalidInput,
    errors.NotFound,
    errors.ConfigConflict,
    errors.Unauthorized,
    errors.ServiceUnavailable,
    errors.ConfigurationError,
]


@pytest.mark.parametrize("cls", ALL)
def test_errors_survive_pickling(cls: type[errors.BgpoError]) -> None:
    """Ray carries exceptions between processes by pickling them."""
    exc = cls("some-code", "what happened", "peer_asn", 0, {"hint": [1, 2]})
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert (back.code, back.message, back.field, back.value, back.details) == (
        "some-code",
        "what happened",
        "peer_asn",
        0,
        {"hint": [1, 2]},
    )


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (errors.InvalidInput, 422),
        (errors.NotFound, 404),
        (errors.ConfigConflict, 409),
        (errors.Unauthorized, 401),
        (errors.ServiceUnavailable, 503),
        (errors.ConfigurationError, 500),
        (errors.BgpoError, 400),
    ],
)
def test_one_status_map(cls: type[errors.BgpoError], status: int) -> None:
    assert status_for(cls("c", "m")) == status


def test_to_dict_names_field_and_value() -> None:
    exc = errors.InvalidInput("invalid-asn", "bad", "peer_asn", 0)
    assert exc.to_dict() == {
        "code": "invalid-asn",
        "message": "bad",
        "field": "peer_asn",
        "value": 0,
    }
    assert str(exc) == "invalid-asn: bad"
