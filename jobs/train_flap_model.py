"""Train the flap model with Ray Train (XGBoost), optionally tuned with Ray Tune (ASHA).

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python -m jobs.train_flap_model [--tune] [--activate]

Ray Data reads the offline feature store (Parquet, rows with a known label),
splits it by time (train < validation < test, never at random), Ray Train's
``XGBoostTrainer`` fits the model on ``--workers`` workers, and the model is
exported to ONNX, checked against XGBoost, compared with the recent-flap-count
baseline on the test part and registered in PostgreSQL. ``--activate`` makes it
the model the predictors serve.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bgp_orchestrator.flaps.feature_store import offline_dir
from bgp_orchestrator.flaps.features import ENTITY, FEATURES, LABEL, TIMESTAMP
from bgp_orchestrator.flaps.release import Release, format_report, release
from bgp_orchestrator.flaps.training import DEFAULT_PARAMS, DEFAULT_ROUNDS, Split, time_split
from bgp_orchestrator.local.services import endpoints
from bgp_orchestrator.settings import Settings

COLUMNS = [ENTITY, TIMESTAMP, *FEATURES, LABEL]
# Boosting rounds between two reports to Tune (ASHA stops poor trials at these points).
TUNE_REPORT_EVERY = 10


@dataclass
class Options:
    data: Path
    workers: int = 2
    cpus_per_worker: float = 1.0
    rounds: int = DEFAULT_ROUNDS
    tune: bool = False
    samples: int = 8
    activate: bool = False
    storage: Path | None = None


def _part(frame: pd.DataFrame, split: Split, name: str) -> pd.DataFrame:
    return split.part(frame[frame[LABEL] >= 0], name)


def _train_fn_per_worker(config: dict[str, Any]) -> None:
    """Runs in every Ray Train worker: its shard of the data, one XGBoost collective.

    Metrics and the model are reported once, at the end: a report is a
    synchronisation of all workers, and one per boosting round cost about
    2 s each on a 2-core machine.
    """
    import tempfile

    import ray.train
    import xgboost
    from ray.train.xgboost import RayTrainReportCallback

    def matrix(name: str) -> xgboost.DMatrix:
        frame = ray.train.get_dataset_shard(name).materialize().to_pandas()
        return xgboost.DMatrix(
            frame[list(FEATURES)].to_numpy("float32"), label=frame[LABEL].to_numpy("float32")
        )

    dtrain, dvalid = matrix("train"), matrix("validation")
    history: dict[str, Any] = {}
    booster = xgboost.train(
        config["params"],
        dtrain,
        num_boost_round=config["rounds"],
        evals=[(dvalid, "validation")],
        evals_result=history,
        verbose_eval=False,
    )
    metrics = {f"validation-{k}": float(v[-1]) for k, v in history["validation"].items()}
    metrics["train_rows"] = float(dtrain.num_row())
    if ray.train.get_context().get_world_rank() == 0:
        with tempfile.TemporaryDirectory() as tmp:
            booster.save_model(f"{tmp}/{RayTrainReportCallback.CHECKPOINT_NAME}")
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)


def _split_dataset(data: Path) -> tuple[Any, Split, int]:
    """The labelled rows, their time split (``Split.first``/``last`` bound the data)
    and the number of training rows.

    The split is computed from the two small columns it needs, read with pyarrow
    on the driver: a Ray Data pass over the whole data set costs seconds of
    scheduling on top of the read.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import ray.data

    table = pads.dataset(str(data), format="parquet").to_table(columns=[TIMESTAMP, LABEL])
    known = table.filter(pc.greater_equal(table.column(LABEL), 0))
    split = time_split(pd.Series(pc.unique(known.column(TIMESTAMP)).to_pandas()))
    train_rows = int(pc.sum(pc.less(known.column(TIMESTAMP), split.valid_from)).as_py() or 0)
    ds = ray.data.read_parquet(str(data), columns=COLUMNS, num_cpus=0.25)
    ds = ds.filter(expr=f"{LABEL} >= 0", num_cpus=0.25)  # NaN (horizon unknown) drops out
    return ds, split, train_rows


def _partition(ds: Any, split: Split, name: str) -> Any:
    return ds.map_batches(
        lambda batch: split.part(batch, name), batch_format="pandas", num_cpus=0.25
    )


def fit_with_ray_train(options: Options, params: dict[str, Any]) -> tuple[Any, Any, Split, int]:
    """Ray Data + Ray Train: the booster, the test dataset, the split, the training rows."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    ds, split, train_rows = _split_dataset(options.data)
    train = _partition(ds, split, "train")
    trainer = XGBoostTrainer(
        _train_fn_per_worker,
        train_loop_config={"params": params, "rounds": options.rounds},
        scaling_config=ScalingConfig(
            num_workers=options.workers, resources_per_worker={"CPU": options.cpus_per_worker}
        ),
        run_config=RunConfig(
            name=f"flap-model-{int(time.time())}",
            storage_path=str(options.storage) if options.storage else None,
        ),
        datasets={
            "train": train,
            "validation": _partition(ds, split, "validation"),
        },
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training ended without a model: {result.error}")
    booster = RayTrainReportCallback.get_model(result.checkpoint)
    return booster, _partition(ds, split, "test"), split, train_rows


def tune_then_fit(options: Options) -> tuple[Any, Any, Split, int, dict[str, Any]]:
    """Ray Tune with ASHA over the main hyperparameters; keeps the best trial's model."""
    import xgboost
    from ray import tune
    from ray.tune.integration.xgboost import TuneReportCheckpointCallback
    from ray.tune.schedulers import ASHAScheduler

    ds, split, _ = _split_dataset(options.data)
    train = _partition(ds, split, "train").to_pandas()
    valid = _partition(ds, split, "validation").to_pandas()

    every = TUNE_REPORT_EVERY

    class Report(xgboost.callback.TrainingCallback):
        """Report to Tune, with the model so far, every few rounds (ASHA's unit of
        time; a trial ASHA stops keeps its last model) and after the last round."""

        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
            if (epoch + 1) % every == 0 or epoch + 1 == options.rounds:
                import tempfile

                score = float(evals_log["validation"]["aucpr"][-1])
                with tempfile.TemporaryDirectory() as tmp:
                    model.save_model(f"{tmp}/{TuneReportCheckpointCallback.CHECKPOINT_NAME}")
                    tune.report(
                        {"validation-aucpr": score}, checkpoint=tune.Checkpoint.from_directory(tmp)
                    )
            return False

    def trial(config: dict[str, Any], train: pd.DataFrame, valid: pd.DataFrame) -> None:
        dtrain = xgboost.DMatrix(train[list(FEATURES)].to_numpy("float32"), label=train[LABEL])
        dvalid = xgboost.DMatrix(valid[list(FEATURES)].to_numpy("float32"), label=valid[LABEL])
        xgboost.train(
            {**DEFAULT_PARAMS, **config, "nthread": 1, "eval_metric": ["aucpr"]},
            dtrain,
            num_boost_round=options.rounds,
            evals=[(dvalid, "validation")],
            verbose_eval=False,
            callbacks=[Report()],
        )

    space = {
        "max_depth": tune.randint(3, 10),
        "eta": tune.loguniform(0.02, 0.3),
        "min_child_weight": tune.loguniform(1, 50),
        "subsample": tune.uniform(0.6, 1.0),
        "colsample_bytree": tune.uniform(0.6, 1.0),
    }
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(trial, train=train, valid=valid),
            {"cpu": options.cpus_per_worker},
        ),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="validation-aucpr",
            mode="max",
            num_samples=options.samples,
            scheduler=ASHAScheduler(
                max_t=max(2, -(-options.rounds // every)), grace_period=2, reduction_factor=3
            ),
        ),
        run_config=tune.RunConfig(
            name=f"flap-tune-{int(time.time())}",
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            storage_path=str(options.storage) if options.storage else None,
        ),
    )
    best = tuner.fit().get_best_result()
    if best.checkpoint is None or best.config is None:
        raise RuntimeError(f"no Tune trial produced a model: {best.error}")
    booster = TuneReportCheckpointCallback.get_model(best.checkpoint)
    return booster, _partition(ds, split, "test"), split, len(train), dict(best.config)


def run(settings: Settings, options: Options) -> Release:
    import ray

    if not options.data.exists() or not any(options.data.glob("*.parquet")):
        raise SystemExit(
            f"no training data in {options.data}: write some first, e.g. "
            "`python -m jobs.build_flap_dataset simulate`"
        )
    ray.init(ignore_reinit_error=True, log_to_driver=False)
    started = time.perf_counter()
    if options.tune:
        booster, test_ds, split, rows, best = tune_then_fit(options)
        params = {**DEFAULT_PARAMS, **best}
    else:
        params = dict(DEFAULT_PARAMS)
        booster, test_ds, split, rows = fit_with_ray_train(options, params)
    train_s = time.perf_counter() - started
    test = test_ds.to_pandas()
    dsn = endpoints(settings).database_url
    return asyncio.run(
        release(
            booster,
            test,
            dsn=dsn,
            model_store=settings.model_store_uri,
            params={**params, "rounds": options.rounds, "tuned": options.tune},
            data_from=split.first.to_pydatetime(),
            data_to=split.last.to_pydatetime(),
            training_rows=rows,
            activate=options.activate,
            extra_metrics={"train_seconds": round(train_s, 2), "workers": options.workers},
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="offline store folder (default: the stack's)")
    parser.add_argument("--workers", type=int, default=2, help="Ray Train workers (default 2)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="boosting rounds")
    parser.add_argument("--tune", action="store_true", help="search hyperparameters (ASHA)")
    parser.add_argument("--samples", type=int, default=8, help="Tune trials (with --tune)")
    parser.add_argument("--activate", action="store_true", help="serve the new model at once")
    args = parser.parse_args(argv)
    settings = Settings()
    options = Options(
        data=args.data or offline_dir(settings),
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        rounds=args.rounds,
        tune=args.tune,
        samples=args.samples,
        activate=args.activate,
        storage=settings.data_dir / "ray_results",
    )
    result = run(settings, options)
    print(format_report(result.report))
    state = "active" if result.record.active else "registered (activate it to serve)"
    print(f"model v{result.record.version} {state}: {result.record.artifact_uri}")
    print(json.dumps({"version": result.record.version, **result.report["model"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
