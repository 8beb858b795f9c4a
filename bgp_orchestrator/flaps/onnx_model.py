"""ONNX export of the flap model and the runtime that serves it.

The exported graph takes a float32 matrix whose columns are
:data:`~bgp_orchestrator.flaps.features.FEATURES` in that order. A model is only
registered (or activated) if the ONNX probabilities agree with XGBoost's on a
held-out batch within :data:`AGREEMENT_TOLERANCE`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bgp_orchestrator.errors import BgpoError
from bgp_orchestrator.flaps.features import FEATURES

if TYPE_CHECKING:
    import xgboost

AGREEMENT_TOLERANCE = 1e-5
INPUT_NAME = "features"


class ModelCheckError(BgpoError):
    """A model that does not load, or whose answers are not trustworthy."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__("model-check-failed", message, "model", str(path) if path else None)
        # Exceptions pickle as ``type(*args)`` plus their ``__dict__``: ``args`` must be
        # this constructor's arguments, not the root's five, or the copy Ray makes on
        # the other side of an actor call fails to build (TypeError).
        self.args = (message, path)


def export(booster: xgboost.Booster, path: Path) -> Path:
    """Write the booster as an ONNX graph (atomically) and return its path."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    onnx_model = onnxmltools.convert_xgboost(
        booster,
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURES)]))],
        target_opset=15,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(onnx_model.SerializeToString())
    partial.replace(path)
    return path


class OnnxFlapModel:
    """One loaded ONNX flap model: ``predict`` returns flap probabilities."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise ModelCheckError(f"model file {path} does not exist", path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several unrelated types
            raise ModelCheckError(f"model file {path} does not load: {exc}", path) from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].shape[-1] != len(FEATURES):
            raise ModelCheckError(
                f"model file {path} expects {inputs[0].shape if inputs else 'no'} inputs, "
                f"not the {len(FEATURES)} flap features",
                path,
            )
        self._input = inputs[0].name
        outputs = [o.name for o in self._session.get_outputs()]
        self._output = "probabilities" if "probabilities" in outputs else outputs[-1]
        self.path = path

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if matrix.ndim != 2 or matrix.shape[1] != len(FEATURES):
            raise ValueError(f"expected an (n, {len(FEATURES)}) matrix, got {matrix.shape}")
        if len(matrix) == 0:
            return np.zeros(0, dtype=np.float32)
        (out,) = self._session.run([self._output], {self._input: matrix.astype(np.float32)})
        probabilities: np.ndarray = np.asarray(out)
        return probabilities[:, 1] if probabilities.ndim == 2 else probabilities


def agreement(booster: xgboost.Booster, model: OnnxFlapModel, matrix: np.ndarray) -> float:
    """Largest absolute difference between XGBoost's and ONNX's probabilities."""
    import xgboost

    native = booster.predict(xgboost.DMatrix(matrix))
    return float(np.max(np.abs(native - model.predict(matrix)))) if len(matrix) else 0.0


def check_agreement(
    booster: xgboost.Booster,
    model: OnnxFlapModel,
    matrix: np.ndarray,
    tolerance: float = AGREEMENT_TOLERANCE,
) -> float:
    """Raise :class:`ModelCheckError` unless the two agree within ``tolerance``."""
    worst = agreement(booster, model, matrix)
    if not worst <= tolerance:
        raise ModelCheckError(
            f"ONNX and XGBoost probabilities differ by up to {worst:.2e} on "
            f"{len(matrix)} held-out rows (tolerance {tolerance:.0e}); the model is not registered"
        )
    return worst


def smoke_test(model: OnnxFlapModel) -> dict[str, Any]:
    """A model about to serve must answer a batch with probabilities in [0, 1]."""
    probe = np.zeros((4, len(FEATURES)), dtype=np.float32)
    probe[1] = 1.0
    probe[2, 5] = 12.0
    probe[3, 8] = 60.0
    out = model.predict(probe)
    if out.shape != (4,) or not np.all((out >= 0) & (out <= 1)):
        raise ModelCheckError(f"model {model.path} answered {out!r} to a probe batch")
    return {"probe": [float(v) for v in out]}
