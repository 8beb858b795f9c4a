"""Seasonal models that give each series its expected values.

Two engines behind one function, :func:`expected_values`:

- ``statsforecast`` (default): many series in one ``StatsForecast`` call; the
  expected value of a point is the model's one-step-ahead fitted value, i.e.
  what the model predicted from the points before it. The model is chosen by
  measurement (``bench/anomaly_fit.py`` prints the comparison): seasonal
  exponential smoothing keeps one smoothed level per season slot and fits
  about 10,000 hourly series/s on this project's 2-core reference machine, where
  MSTL fitted ~230/s and seasonal AutoETS ~7/s, with at least their accuracy
  on the injected anomalies.
- ``prophet``: Meta's Prophet, one series at a time with one custom seasonality
  of the season's period; the reference engine (about 16 series/s).

Both are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from bgp_orchestrator.anomaly.prepare import Prepared
from bgp_orchestrator.errors import InvalidInput

Engine = Literal["statsforecast", "prophet"]
ENGINES: tuple[str, ...] = ("statsforecast", "prophet")
#: statsforecast models selectable by name.
MODELS: tuple[str, ...] = ("seasonal_es", "seasonal_es_optimized", "mstl", "autoets")
DEFAULT_MODEL = "seasonal_es"


@dataclass(frozen=True)
class FitParams:
    """What a fitting run uses; stored with every run."""

    engine: str = "statsforecast"
    model: str = DEFAULT_MODEL
    season_length: int = 24  # steps per season (24 = a day of hourly steps)
    k: float = 3.0  # band half-width in sigmas
    alpha: float = 0.05  # smoothing of seasonal_es (bench: F1 0.93 at 0.05, 0.89 at 0.1)
    resolution_s: int = 3600
    #: Refit the series that had anomalies with their flagged points replaced by
    #: the expected values, so an incident of hours or days is judged against the
    #: normal before it instead of being learnt as the new normal.
    clean: bool = True

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidInput(
                "unknown-engine",
                f"engine must be one of {', '.join(ENGINES)}",
                field="engine",
                value=self.engine,
            )
        if self.model not in MODELS:
            raise InvalidInput(
                "unknown-model",
                f"model must be one of {', '.join(MODELS)}",
                field="model",
                value=self.model,
            )
        if self.season_length < 2:
            raise InvalidInput(
                "bad-season", "season_length must be at least 2 steps", "season_length"
            )
        if not self.k > 0:
            raise InvalidInput("bad-sigma", "k (sigmas) must be positive", "k", self.k)
        if not 0 < self.alpha < 1:
            raise InvalidInput("bad-alpha", "alpha must be in (0, 1)", "alpha", self.alpha)
        if self.resolution_s < 1:
            raise InvalidInput("bad-resolution", "resolution must be positive", "resolution_s")

    @property
    def resolution(self) -> pd.Timedelta:
        return pd.Timedelta(seconds=self.resolution_s)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _statsforecast_model(params: FitParams) -> Any:
    from statsforecast import models

    m = params.season_length
    if params.model == "seasonal_es":
        return models.SeasonalExponentialSmoothing(season_length=m, alpha=params.alpha)
    if params.model == "seasonal_es_optimized":
        return models.SeasonalExponentialSmoothingOptimized(season_length=m)
    if params.model == "mstl":
        return models.MSTL(season_length=m, trend_forecaster=models.AutoETS(model="ZZN"))
    return models.AutoETS(season_length=m)


def _statsforecast(
    series: Sequence[Prepared], params: FitParams, horizon: int
) -> dict[str, np.ndarray]:
    from statsforecast import StatsForecast

    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(len(series)), [len(s.values) for s in series]),
            "ds": np.concatenate([s.index.tz_localize(None).to_numpy() for s in series]),
            "y": np.concatenate([s.values for s in series]),
        }
    )
    model = _statsforecast_model(params)
    freq = pd.tseries.frequencies.to_offset(params.resolution)
    forecaster = StatsForecast(models=[model], freq=freq, n_jobs=1)
    forecast = forecaster.forecast(df=frame, h=max(horizon, 1), fitted=True)
    fitted = forecaster.forecast_fitted_values()  # type: ignore[no-untyped-call]
    column = next(c for c in fitted.columns if c not in ("unique_id", "ds", "y"))
    fitted_values = fitted[column].to_numpy(np.float64)
    ahead = forecast[column].to_numpy(np.float64)
    out: dict[str, np.ndarray] = {}
    offset = 0
    for number, item in enumerate(series):
        n = len(item.values)
        expected = fitted_values[offset : offset + n]
        if horizon:
            step = max(horizon, 1)
            expected = np.concatenate([expected, ahead[number * step : number * step + horizon]])
        out[item.series_id] = expected
        offset += n
    return out


def _prophet(series: Sequence[Prepared], params: FitParams, horizon: int) -> dict[str, np.ndarray]:
    from prophet import Prophet

    # cmdstanpy logs two INFO lines per fit through its own handler.
    logging.getLogger("cmdstanpy").disabled = True
    logging.getLogger("prophet").setLevel(logging.WARNING)
    period_days = params.season_length * params.resolution_s / 86400
    out: dict[str, np.ndarray] = {}
    for item in series:
        index = item.index.tz_localize(None)
        if horizon:
            step = params.resolution
            index = index.append(pd.date_range(index[-1] + step, periods=horizon, freq=step))
        model = Prophet(
            daily_seasonality=False,
            weekly_seasonality=False,
            yearly_seasonality=False,
            uncertainty_samples=0,
        )
        model.add_seasonality(name="season", period=period_days, fourier_order=8)
        model.fit(pd.DataFrame({"ds": index[: len(item.values)], "y": item.values}))
        predicted = model.predict(pd.DataFrame({"ds": index}))
        out[item.series_id] = predicted["yhat"].to_numpy(np.float64)
    return out


def expected_values(
    series: Sequence[Prepared], params: FitParams, *, horizon: int = 0
) -> dict[str, np.ndarray]:
    """Per series id: the expected value of each of its points, then of ``horizon``
    further steps (NaN where the model has none, e.g. statsforecast's first season)."""
    if not series:
        return {}
    if params.engine == "prophet":
        return _prophet(series, params, horizon)
    return _statsforecast(series, params, horizon)
