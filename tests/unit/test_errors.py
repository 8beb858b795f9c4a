import importlib
import inspect
import pickle
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bgp_orchestrator
import jobs
from bgp_orchestrator import errors
from bgp_orchestrator.api.problems import status_for

ROOT_PARAMETERS = ["code", "message", "field", "value", "details"]


def _import_everything() -> None:
    """Every module of the core package and the job entrypoints, so that every error
    class exists (``deployments`` is left out: it imports Ray Serve)."""
    for package in (bgp_orchestrator, jobs):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" not in module.name:  # Alembic scripts run only under Alembic
                importlib.import_module(module.name)


def _subclasses(cls: type[errors.BgpoError]) -> Iterator[type[errors.BgpoError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _all_errors() -> list[type[errors.BgpoError]]:
    _import_everything()
    found = {errors.BgpoError, *_subclasses(errors.BgpoError)}
    ours = [c for c in found if c.__module__.split(".")[0] in ("bgp_orchestrator", "jobs")]
    return sorted(ours, key=lambda c: f"{c.__module__}.{c.__qualname__}")


ALL = _all_errors()


def _model_check_error() -> errors.BgpoError:
    from bgp_orchestrator.flaps.onnx_model import ModelCheckError

    return ModelCheckError("model file /m/7.onnx does not load", Path("/m/7.onnx"))


Fields = tuple[str, str, str | None, object, dict[str, object]]
ROOT_ARGS: Fields = ("some-code", "what happened", "peer_asn", 0, {"hint": [1, 2]})

#: Classes whose constructor is not the root's: a representative instance, and the
#: (code, message, field, value, details) it must carry.
CUSTOM: dict[str, tuple[Callable[[], errors.BgpoError], Fields]] = {
    "bgp_orchestrator.flaps.onnx_model.ModelCheckError": (
        _model_check_error,
        ("model-check-failed", "model file /m/7.onnx does not load", "model", "/m/7.onnx", {}),
    ),
}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _instance(cls: type[errors.BgpoError]) -> tuple[errors.BgpoError, Fields]:
    if _name(cls) in CUSTOM:
        factory, fields = CUSTOM[_name(cls)]
        return factory(), fields
    parameters = list(inspect.signature(cls).parameters)
    assert parameters == ROOT_PARAMETERS, (
        f"{_name(cls)} takes {parameters}, not the root's arguments: add a representative "
        "instance to CUSTOM in tests/unit/test_errors.py"
    )
    return cls(*ROOT_ARGS), ROOT_ARGS


def test_every_error_class_is_found() -> None:
    names = {_name(c) for c in ALL}
    assert {_name(c) for c in (errors.InvalidInput, errors.ServiceUnavailable)} <= names
    assert "bgp_orchestrator.bgp.parsers.common.Malformed" in names
    assert set(CUSTOM) <= names, set(CUSTOM) - names


@pytest.mark.parametrize("cls", ALL, ids=_name)
def test_errors_survive_pickling(cls: type[errors.BgpoError]) -> None:
    """Ray carries exceptions between processes by pickling them: every subclass of
    the root, with its type, code, message, field, value, details and arguments."""
    exc, fields = _instance(cls)
    assert type(exc) is cls
    assert (exc.code, exc.message, exc.field, exc.value, exc.details) == fields
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert (back.code, back.message, back.field, back.value, back.details) == fields
    assert vars(back) == vars(exc)
    assert back.args == exc.args
    assert str(back) == str(exc)


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
