"""ONNX export: the agreement check with XGBoost, and models that must be refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xgboost

from bgp_orchestrator.flaps.dataset import simulated
from bgp_orchestrator.flaps.features import LABEL
from bgp_orchestrator.flaps.onnx_model import (
    AGREEMENT_TOLERANCE,
    ModelCheckError,
    OnnxFlapModel,
    agreement,
    check_agreement,
    export,
    smoke_test,
)
from bgp_orchestrator.flaps.training import DEFAULT_PARAMS, LabelSpec, xy
from bgp_orchestrator.simulation.sessions import SessionSimulation


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    frame = simulated(SessionSimulation(sessions=400, windows=40, seed=5), LabelSpec())
    return xy(frame[frame[LABEL].notna()])


@pytest.fixture(scope="module")
def booster(data: tuple[np.ndarray, np.ndarray]) -> xgboost.Booster:
    matrix, labels = data
    return xgboost.train(
        {**DEFAULT_PARAMS, "nthread": 1}, xgboost.DMatrix(matrix, label=labels), 30
    )


def test_onnx_agrees_with_xgboost_on_held_out_rows(
    booster: xgboost.Booster, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model = OnnxFlapModel(export(booster, tmp_path / "m.onnx"))
    held_out = data[0][-3000:]
    worst = check_agreement(booster, model, held_out)
    assert worst <= AGREEMENT_TOLERANCE
    probabilities = model.predict(held_out)
    assert probabilities.shape == (3000,) and 0 <= probabilities.min() <= probabilities.max() <= 1
    assert len(np.unique(probabilities)) > 10  # a real model, not a constant
    smoke_test(model)


def test_a_model_that_disagrees_is_refused(
    booster: xgboost.Booster, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    matrix, labels = data
    other = xgboost.train(
        {**DEFAULT_PARAMS, "nthread": 1, "max_depth": 2},
        xgboost.DMatrix(matrix, label=labels),
        5,
    )
    model = OnnxFlapModel(export(other, tmp_path / "other.onnx"))
    assert agreement(booster, model, matrix[:500]) > AGREEMENT_TOLERANCE
    with pytest.raises(ModelCheckError, match="differ by up to"):
        check_agreement(booster, model, matrix[:500])


def test_missing_and_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelCheckError, match="does not exist"):
        OnnxFlapModel(tmp_path / "absent.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 this is not a protobuf")
    with pytest.raises(ModelCheckError, match="does not load"):
        OnnxFlapModel(corrupt)


def test_wrong_input_shape_is_refused(booster: xgboost.Booster, tmp_path: Path) -> None:
    model = OnnxFlapModel(export(booster, tmp_path / "m.onnx"))
    with pytest.raises(ValueError, match="matrix"):
        model.predict(np.zeros((3, 5), dtype=np.float32))
