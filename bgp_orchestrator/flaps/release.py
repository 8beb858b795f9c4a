"""From a trained booster to a registered (and optionally active) model.

Export to ONNX, check it against XGBoost on held-out rows, evaluate both the
model and the baseline rule on the test part, publish the artifacts, register
the model. Any failed check raises before anything is registered, so a bad
model never reaches the predictors.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bgp_orchestrator.flaps import registry
from bgp_orchestrator.flaps.features import FEATURES
from bgp_orchestrator.flaps.onnx_model import OnnxFlapModel, check_agreement, export, smoke_test
from bgp_orchestrator.flaps.training import baseline_metrics, evaluate, xy

if TYPE_CHECKING:
    import xgboost

    from bgp_orchestrator.settings import Settings

log = logging.getLogger(__name__)

# Rows of the test part used for the ONNX agreement check.
AGREEMENT_ROWS = 50_000


@dataclass(frozen=True)
class Release:
    record: registry.ModelRecord
    report: dict[str, Any]


def report(booster: xgboost.Booster, test: pd.DataFrame) -> dict[str, Any]:
    """The model's and the baseline's metrics on the same test rows."""
    import xgboost

    matrix, labels = xy(test)
    probabilities = booster.predict(xgboost.DMatrix(matrix))
    return {"model": evaluate(labels, probabilities), "baseline": baseline_metrics(test)}


async def release(
    booster: xgboost.Booster,
    test: pd.DataFrame,
    *,
    settings: Settings,
    model_store: str,
    params: dict[str, Any],
    data_from: Any,
    data_to: Any,
    training_rows: int,
    activate: bool,
    extra_metrics: dict[str, Any] | None = None,
) -> Release:

    metrics = report(booster, test)
    metrics.update(extra_metrics or {})
    with tempfile.TemporaryDirectory(prefix="bgpo-model-") as tmp:
        folder = Path(tmp)
        onnx_path = export(booster, folder / registry.MODEL_FILE)
        booster.save_model(str(folder / registry.BOOSTER_FILE))
        model = OnnxFlapModel(onnx_path)
        matrix, _ = xy(test.iloc[:AGREEMENT_ROWS])
        worst = check_agreement(booster, model, matrix)
        smoke_test(model)
        metrics["onnx_max_abs_diff"] = worst
        uri = registry.publish(folder, registry.new_artifact_uri(model_store))
    from bgp_orchestrator.storage.database import open_database

    async with open_database(settings) as db, db.transaction() as conn:
        record = await registry.register(
            conn,
            features=FEATURES,
            metrics=metrics,
            params=params,
            data_from=data_from,
            data_to=data_to,
            training_rows=training_rows,
            artifact_uri=uri,
            onnx_max_diff=worst,
        )
        if activate:
            record = await registry.activate(conn, record.version)
    log.info("registered flap model v%d at %s", record.version, uri)
    return Release(record, metrics)


def format_report(metrics: dict[str, Any]) -> str:
    """A small table: model against baseline."""
    rows = ["metric                 model  baseline"]
    model, base = metrics["model"], metrics["baseline"]
    for key in ("roc_auc", "pr_auc", "precision_top_1pct", "brier", "calibration_error"):
        b = base.get(key)
        rows.append(
            f"{key:<20}{model[key]:>8.4f}  " + (f"{b:>8.4f}" if b is not None else "       -")
        )
    rows.append(f"test rows {int(model['rows']):,}, flapping share {model['positives']:.3%}")
    return "\n".join(rows)
