"""The metric store on VictoriaMetrics (its HTTP import/export API).

Points are written with ``/api/v1/import`` (JSON lines, one line per series)
and read back with ``/api/v1/export``, so reads return the raw points, not a
query's resampled ones. Each point is a sample of ``<metric>{session=..,
peer_asn=.., <labels>}`` with millisecond timestamps.

Things to know:

* VictoriaMetrics ingests asynchronously: a point written now becomes readable
  after a short delay (about a second; up to a few seconds under load).
  :meth:`VictoriaMetricsStore.flush` (``/internal/force_flush``) makes written
  points readable at once; tests use it.
* Points older than the server's ``-retentionPeriod`` (``BGPO_METRICS_RETENTION``
  for the embedded server) are discarded on write, by the server.
* The embedded server runs with ``-dedup.minScrapeInterval=1ms``, so writing a
  point twice (a retried write) stores it once; :meth:`read` also drops
  repeated points (last one wins) for servers configured without it.
* :meth:`series` answers from VictoriaMetrics' per-day index: it lists the
  series with points on the UTC days the range touches, which may include a
  series whose points on those days all lie outside ``[start, end)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from bgp_orchestrator.anomaly.series import MetricPoint, bucket_of
from bgp_orchestrator.anomaly.store import (
    MetricStoreError,
    SeriesPoints,
    empty_frame,
    epoch_ms,
    finish_points,
    finish_series,
    nothing_asked,
    point_ms,
    validate_points,
)
from bgp_orchestrator.local.services import redact

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from bgp_orchestrator.anomaly.prepare import SeriesFrame

#: Characters with a meaning in RE2 (VictoriaMetrics' regex syntax).
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")
#: Sessions per ``session=~"a|b|..."`` selector; longer lists are read in chunks.
SESSIONS_PER_SELECTOR = 100
#: Series per ``/api/v1/import`` request.
SERIES_PER_IMPORT = 5_000
#: Concurrent export requests of one read.
READ_CONCURRENCY = 4


def re2_escape(text: str) -> str:
    return "".join("\\" + ch if ch in _RE2_SPECIAL else ch for ch in text)


def _quote(text: str) -> str:
    """A MetricsQL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _alternation(names: Sequence[str]) -> str:
    return _quote("|".join(re2_escape(n) for n in sorted(set(names))))


def selectors(
    metrics: Sequence[str] | None,
    sessions: Sequence[str] | None,
    buckets: Sequence[int] | None = None,
) -> list[str]:
    """``match[]`` selectors for the points of these metrics, sessions and buckets
    (None = all)."""
    base = ['peer_asn=~"[0-9]+"']
    if metrics is not None:
        base.insert(0, f"__name__=~{_alternation(metrics)}")
    if buckets is not None:
        base.append(f"bucket=~{_alternation([str(b) for b in buckets])}")
    if sessions is None:
        return ["{" + ",".join([*base, 'session=~".+"']) + "}"]
    unique = sorted(set(sessions))
    return [
        "{" + ",".join([*base, f"session=~{_alternation(chunk)}"]) + "}"
        for chunk in (
            unique[i : i + SESSIONS_PER_SELECTOR]
            for i in range(0, len(unique), SESSIONS_PER_SELECTOR)
        )
    ]


def import_lines(points: Sequence[MetricPoint]) -> list[bytes]:
    """One ``/api/v1/import`` JSON line per series (points grouped by metric and labels)."""
    grouped: dict[tuple[str, str, int, tuple[tuple[str, str], ...]], tuple[list[float], list[int]]]
    grouped = {}
    for p in points:
        key = (p.metric, p.session, p.peer_asn, tuple(sorted(p.labels)))
        values, stamps = grouped.setdefault(key, ([], []))
        values.append(p.value)
        stamps.append(point_ms(p))
    lines = []
    for (metric, session, peer_asn, labels), (values, stamps) in grouped.items():
        name = {
            "__name__": metric,
            "session": session,
            "peer_asn": str(peer_asn),
            "bucket": str(bucket_of(session)),
            **dict(labels),
        }
        lines.append(orjson.dumps({"metric": name, "values": values, "timestamps": stamps}))
    return lines


class VictoriaMetricsStore:
    """A :class:`~bgp_orchestrator.anomaly.store.MetricStore` on a VictoriaMetrics server."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        # What messages show: a password in the URL is never printed.
        self.shown = redact(self.url)
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    def describe(self) -> str:
        return f"VictoriaMetrics at {self.shown}"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(base_url=self.url, timeout=self.timeout_s)
        return self._client

    async def _post(self, path: str, what: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = await self._http().post(path, **kwargs)
        except httpx.HTTPError as exc:
            raise MetricStoreError(
                "metric-store-unavailable",
                f"cannot {what}: VictoriaMetrics at {self.shown} does not answer "
                f"({type(exc).__name__}: {exc}); is it running? (`bgpo status`)",
                "victoria_metrics_url",
                self.shown,
            ) from exc
        if response.status_code >= 300:
            hint = ""
            if "exceeds" in response.text or "-search.max" in response.text:
                hint = (
                    " (the server's limits are too low for this many series: raise its "
                    "-search.maxSeries and -search.maxUniqueTimeseries; the embedded "
                    "VictoriaMetrics allows 5,000,000)"
                )
            raise MetricStoreError(
                "metric-store-failed",
                f"cannot {what}: VictoriaMetrics at {self.shown} answered HTTP "
                f"{response.status_code}: {response.text[:300]}{hint}",
                "victoria_metrics_url",
                self.shown,
            )
        return response

    async def write(self, points: Sequence[MetricPoint]) -> None:
        if not points:
            return
        validate_points(points)
        lines = import_lines(points)
        for i in range(0, len(lines), SERIES_PER_IMPORT):
            body = b"\n".join(lines[i : i + SERIES_PER_IMPORT]) + b"\n"
            await self._post("/api/v1/import", f"write {len(points)} points", content=body)

    async def write_series(self, series: Sequence[SeriesPoints]) -> None:
        """Whole series at once, one import line each (no point objects)."""
        lines = []
        for item in series:
            item.validate()
            if not len(item.values):
                continue
            name = {
                "__name__": item.metric,
                "session": item.session,
                "peer_asn": str(item.peer_asn),
                "bucket": str(bucket_of(item.session)),
                **dict(item.labels),
            }
            stamps = (item.timestamps * 1000).round().astype("int64").tolist()
            lines.append(
                orjson.dumps({"metric": name, "values": item.values.tolist(), "timestamps": stamps})
            )
        for i in range(0, len(lines), SERIES_PER_IMPORT):
            body = b"\n".join(lines[i : i + SERIES_PER_IMPORT]) + b"\n"
            await self._post("/api/v1/import", f"write {len(lines)} series", content=body)

    async def flush(self) -> None:
        """Make every point written so far readable (``/internal/force_flush``)."""
        import httpx

        try:
            response = await self._http().get("/internal/force_flush")
        except httpx.HTTPError as exc:
            raise MetricStoreError(
                "metric-store-unavailable",
                f"cannot flush: VictoriaMetrics at {self.shown} does not answer ({exc})",
                "victoria_metrics_url",
                self.shown,
            ) from exc
        if response.status_code >= 300:
            raise MetricStoreError(
                "metric-store-failed",
                f"cannot flush VictoriaMetrics at {self.shown}: HTTP {response.status_code}",
            )

    @staticmethod
    def _range(start: datetime, end: datetime) -> tuple[int, int, dict[str, str]]:
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        # The server's range is inclusive at both ends: ask for [start, end - 1 ms].
        params = {"start": f"{start_ms / 1000:.3f}", "end": f"{(end_ms - 1) / 1000:.3f}"}
        return start_ms, end_ms, params

    async def _export(
        self,
        start: datetime,
        end: datetime,
        metrics: Sequence[str] | None,
        sessions: Sequence[str] | None,
        buckets: Sequence[int] | None,
    ) -> tuple[list[bytes], int, int]:
        """The export bodies (JSON lines, one per series) and the range in ms."""
        start_ms, end_ms, params = self._range(start, end)
        if (
            end_ms <= start_ms
            or nothing_asked(metrics)
            or nothing_asked(sessions)
            or nothing_asked(buckets)
        ):
            return [], start_ms, end_ms
        limit = asyncio.Semaphore(READ_CONCURRENCY)

        async def export(selector: str) -> bytes:
            async with limit:
                response = await self._post(
                    "/api/v1/export", "read points", data={"match[]": selector, **params}
                )
                return response.content

        selected = selectors(metrics, sessions, buckets)
        return list(await asyncio.gather(*(export(s) for s in selected))), start_ms, end_ms

    async def read(
        self,
        *,
        start: datetime,
        end: datetime,
        metrics: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        buckets: Sequence[int] | None = None,
    ) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        bodies, start_ms, end_ms = await self._export(start, end, metrics, sessions, buckets)
        if not bodies:
            return empty_frame()
        names: list[str] = []
        sess: list[str] = []
        asns: list[int] = []
        stamps: list[Any] = []
        values: list[Any] = []
        for body in bodies:
            for line in body.splitlines():
                if not line:
                    continue
                row = orjson.loads(line)
                labels, n = row["metric"], len(row["timestamps"])
                names.extend([labels["__name__"]] * n)
                sess.extend([labels["session"]] * n)
                asns.extend([int(labels["peer_asn"])] * n)
                stamps.append(np.asarray(row["timestamps"], dtype="int64"))
                values.append(np.asarray(row["values"], dtype="float64"))
        frame = pd.DataFrame(
            {
                "metric": names,
                "session": sess,
                "peer_asn": np.asarray(asns, dtype="int64"),
                "timestamp": np.concatenate(stamps) if stamps else np.empty(0, "int64"),
                "value": np.concatenate(values) if values else np.empty(0, "float64"),
            }
        )
        return finish_points(frame, start_ms, end_ms)

    async def read_series(
        self,
        *,
        start: datetime,
        end: datetime,
        metrics: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        buckets: Sequence[int] | None = None,
    ) -> SeriesFrame:
        """:meth:`read`'s points grouped by series (the same contract: ``start <= t <
        end``, a repeated point once, last wins, sorted), built from the export's
        one line per series without a row per point."""
        import numpy as np
        import pandas as pd

        from bgp_orchestrator.anomaly.prepare import SeriesFrame

        bodies, start_ms, end_ms = await self._export(start, end, metrics, sessions, buckets)
        parts: dict[tuple[str, str], list[tuple[int, Any, Any]]] = {}
        for body in bodies:
            for line in body.splitlines():
                if not line:
                    continue
                row = orjson.loads(line)
                labels = row["metric"]
                parts.setdefault((labels["__name__"], labels["session"]), []).append(
                    (
                        int(labels["peer_asn"]),
                        np.asarray(row["timestamps"], dtype="int64"),
                        np.asarray(row["values"], dtype="float64"),
                    )
                )
        ids: list[str] = []
        peer_asns: list[int] = []
        counts: list[int] = []
        stamps: list[Any] = []
        values: list[Any] = []
        for key in sorted(parts):
            pieces = parts[key]
            ts = np.concatenate([p[1] for p in pieces]) if len(pieces) > 1 else pieces[0][1]
            vs = np.concatenate([p[2] for p in pieces]) if len(pieces) > 1 else pieces[0][2]
            asn = np.concatenate([np.full(len(p[1]), p[0]) for p in pieces])
            keep = (ts >= start_ms) & (ts < end_ms)
            ts, vs, asn = ts[keep], vs[keep], asn[keep]
            if len(ts) == 0:
                continue
            if len(ts) > 1 and not bool((np.diff(ts) > 0).all()):
                order = np.argsort(ts, kind="stable")
                ts, vs, asn = ts[order], vs[order], asn[order]
                last = np.append(ts[1:] != ts[:-1], True)  # the last write of a point wins
                ts, vs, asn = ts[last], vs[last], asn[last]
            ids.append(f"{key[0]}/{key[1]}")
            peer_asns.append(int(asn[0]))
            counts.append(len(ts))
            stamps.append(ts)
            values.append(vs)
        if not ids:
            empty = np.empty(0, np.int64)
            return SeriesFrame([], empty, empty, pd.DatetimeIndex([], tz="UTC"), np.empty(0))
        timestamps = pd.DatetimeIndex(
            pd.to_datetime(np.concatenate(stamps), unit="ms", utc=True)
        ).as_unit("ns")
        return SeriesFrame(
            ids,
            np.asarray(peer_asns, np.int64),
            np.repeat(np.arange(len(ids)), counts),
            timestamps,
            np.concatenate(values),
        )

    async def series(
        self, *, start: datetime, end: datetime, metrics: Sequence[str] | None = None
    ) -> pd.DataFrame:
        _, _, params = self._range(start, end)
        if nothing_asked(metrics):
            return finish_series([])
        response = await self._post(
            "/api/v1/series",
            "list series",
            data={"match[]": selectors(metrics, None)[0], **params},
        )
        data = orjson.loads(response.content).get("data") or []
        return finish_series([(s["__name__"], s["session"], int(s["peer_asn"])) for s in data])

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
