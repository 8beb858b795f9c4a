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
import logging
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
from bgp_orchestrator.settings import Settings

log = logging.getLogger("jobs.train_flap_model")

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


def _train_fn_per_worker(config: dict[str, Any]) -> None:
    """Runs in every Ray Train worker: its shard of the data, one XGBoost collective.

    The shard holds training and validation rows together (one Ray Data pass:
    each pass costs seconds of scheduling on a small cluster) and is split here
    by time. Metrics and the model are reported once, at the end: a report is
    a synchronisation of all workers, and one per boosting round cost about
    2 s each on a 2-core machine.
    """
    import tempfile

    import ray.train
    import xgboost
    from ray.train.xgboost import RayTrainReportCallback

    split: Split = config["split"]
    frame = ray.train.get_dataset_shard("fit").materialize().to_pandas()

    def matrix(part: pd.DataFrame) -> xgboost.DMatrix:
        return xgboost.DMatrix(
            part[list(FEATURES)].to_numpy("float32"), label=part[LABEL].to_numpy("float32")
        )

    dtrain = matrix(split.part(frame, "train"))
    dvalid = matrix(split.part(frame, "validation"))
    del frame
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


@dataclass(frozen=True)
class Labelled:
    """The offline data's labelled rows, split by time.

    The split, the row count and the test part are read with pyarrow on the
    driver (the test part ends up there anyway, for the report); the training
    and validation rows go to the workers through one Ray Data pass.
    """

    data: Path
    split: Split
    train_rows: int

    @classmethod
    def of(cls, data: Path) -> Labelled:
        import pyarrow.compute as pc
        import pyarrow.dataset as pads

        table = pads.dataset(str(data), format="parquet").to_table(columns=[TIMESTAMP, LABEL])
        known = table.filter(pc.greater_equal(table.column(LABEL), 0))
        split = time_split(pd.Series(pc.unique(known.column(TIMESTAMP)).to_pandas()))
        train_rows = int(pc.sum(pc.less(known.column(TIMESTAMP), split.valid_from)).as_py() or 0)
        return cls(data, split, train_rows)

    def fit_rows(self, tasks: int) -> Any:
        """Ray Data: the training and validation rows (labelled, before the test part),
        read by at most ``tasks`` tasks at a time: each task in flight may need a
        Python worker process of its own, and a 2-core cluster spent more time
        starting two dozen of them than reading."""
        import ray.data

        test_from = self.split.test_from

        def keep(batch: pd.DataFrame) -> pd.DataFrame:
            # A NaN label (horizon unknown) is not >= 0 and drops out.
            return batch[(batch[LABEL] >= 0) & (batch[TIMESTAMP] < test_from)]

        ds = ray.data.read_parquet(str(self.data), num_cpus=0.25, concurrency=tasks)
        return ds.select_columns(COLUMNS).map_batches(
            keep,
            batch_format="pandas",
            num_cpus=0.25,
            compute=ray.data.TaskPoolStrategy(size=tasks),
        )

    def test_rows(self) -> pd.DataFrame:
        """The labelled test part, as a pandas frame on the driver."""
        import pyarrow as pa
        import pyarrow.dataset as pads

        dataset = pads.dataset(str(self.data), format="parquet")
        since = pa.scalar(
            self.split.test_from.to_pydatetime(), type=dataset.schema.field(TIMESTAMP).type
        )
        selected = (pads.field(LABEL) >= 0) & (pads.field(TIMESTAMP) >= since)
        return dataset.to_table(columns=COLUMNS, filter=selected).to_pandas()


def fit_with_ray_train(options: Options, params: dict[str, Any]) -> tuple[Any, Labelled]:
    """Ray Data + Ray Train: the booster and the data it was trained on."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    phase = time.perf_counter()
    data = Labelled.of(options.data)
    log.info(
        "time split in %.1f s: %d training rows; validation from %s, test from %s",
        time.perf_counter() - phase,
        data.train_rows,
        data.split.valid_from,
        data.split.test_from,
    )
    trainer = XGBoostTrainer(
        _train_fn_per_worker,
        train_loop_config={"params": params, "rounds": options.rounds, "split": data.split},
        scaling_config=ScalingConfig(
            num_workers=options.workers, resources_per_worker={"CPU": options.cpus_per_worker}
        ),
        run_config=RunConfig(
            name=f"flap-model-{int(time.time())}",
            storage_path=str(options.storage) if options.storage else None,
        ),
        datasets={"fit": data.fit_rows(tasks=max(1, options.workers))},
    )
    phase = time.perf_counter()
    result = trainer.fit()
    log.info(
        "XGBoostTrainer: %d workers, fit in %.1f s", options.workers, time.perf_counter() - phase
    )
    if result.checkpoint is None:
        raise RuntimeError(f"training ended without a model: {result.error}")
    return RayTrainReportCallback.get_model(result.checkpoint), data


def tune_then_fit(options: Options) -> tuple[Any, Labelled, dict[str, Any]]:
    """Ray Tune with ASHA over the main hyperparameters; keeps the best trial's model."""
    import xgboost
    from ray import tune
    from ray.tune.integration.xgboost import TuneReportCheckpointCallback
    from ray.tune.schedulers import ASHAScheduler

    data = Labelled.of(options.data)
    fit = data.fit_rows(tasks=2).to_pandas()
    train, valid = data.split.part(fit, "train"), data.split.part(fit, "validation")
    del fit

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
    return booster, data, dict(best.config)


def run(settings: Settings, options: Options) -> Release:
    import ray

    if not options.data.exists() or not any(options.data.glob("*.parquet")):
        raise SystemExit(
            f"no training data in {options.data}: write some first, e.g. "
            "`python -m jobs.build_flap_dataset simulate`"
        )
    begun = time.perf_counter()
    ray.init(ignore_reinit_error=True, log_to_driver=False)
    log.info("connected to Ray in %.1f s", time.perf_counter() - begun)
    started = time.perf_counter()
    if options.tune:
        booster, data, best = tune_then_fit(options)
        params = {**DEFAULT_PARAMS, **best}
    else:
        params = dict(DEFAULT_PARAMS)
        booster, data = fit_with_ray_train(options, params)
    split, rows = data.split, data.train_rows
    train_s = time.perf_counter() - started
    log.info("trained on %d rows in %.1f s", rows, train_s)
    phase = time.perf_counter()
    test = data.test_rows()
    log.info("read %d test rows in %.1f s", len(test), time.perf_counter() - phase)
    phase = time.perf_counter()
    released = asyncio.run(
        release(
            booster,
            test,
            settings=settings,
            model_store=settings.model_store_uri,
            params={**params, "rounds": options.rounds, "tuned": options.tune},
            data_from=split.first.to_pydatetime(),
            data_to=split.last.to_pydatetime(),
            training_rows=rows,
            activate=options.activate,
            extra_metrics={"train_seconds": round(train_s, 2), "workers": options.workers},
        )
    )
    log.info(
        "scored, exported to ONNX, checked and registered in %.1f s (%.1f s in all)",
        time.perf_counter() - phase,
        time.perf_counter() - begun,
    )
    return released


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
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
