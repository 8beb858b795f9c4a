"""The Grafana dashboard asks only for what the system really produces."""

import json
import re
from pathlib import Path

import pytest

from bgp_orchestrator.anomaly.series import BAND_METRICS, METRICS

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "cluster" / "grafana" / "anomalies.json"
MIGRATIONS = REPO / "bgp_orchestrator" / "storage" / "migrations" / "versions"
PRODUCED_METRICS = set(METRICS) | set(BAND_METRICS)


def _tables() -> dict[str, set[str]]:
    """Tables the migrations create, with their columns."""
    tables: dict[str, set[str]] = {}
    for path in MIGRATIONS.glob("*.py"):
        text = path.read_text()
        for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\s*\)\n", text, re.S):
            columns = set(re.findall(r"^\s*(\w+)\s+\w", body, re.M)) - {
                "CHECK",
                "UNIQUE",
                "PRIMARY",
            }
            tables[name] = columns
    return tables


def _panels() -> list[dict]:
    return json.loads(DASHBOARD.read_text())["panels"]


def test_the_tables_are_found_in_the_migrations() -> None:
    tables = _tables()
    assert {"anomalies", "anomaly_runs", "flap_models"} <= set(tables)
    assert {"score", "severity", "peer_asn", "start_at"} <= tables["anomalies"]


def test_at_least_eight_panels_each_with_a_query() -> None:
    panels = _panels()
    assert len(panels) >= 8
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("expr") or target.get("rawSql"), panel["title"]


@pytest.mark.parametrize("panel", _panels(), ids=lambda p: p["title"])
def test_every_query_names_a_produced_metric_or_table(panel: dict) -> None:
    tables = _tables()
    for target in panel["targets"]:
        if "expr" in target:
            names = set(re.findall(r"\bbgpo_[a-z_]+\b", target["expr"]))
            names |= {"$metric"} if "$metric{" in target["expr"] else set()
            assert names, f"{panel['title']}: no metric in {target['expr']!r}"
            unknown = names - PRODUCED_METRICS - {"$metric"}
            assert not unknown, f"{panel['title']}: nobody writes {unknown}"
        else:
            sql = target["rawSql"]
            used = set(re.findall(r"\bFROM\s+(\w+)", sql, re.I))
            assert used, f"{panel['title']}: no table in {sql!r}"
            assert used <= set(tables), f"{panel['title']}: no such table {used - set(tables)}"
            columns = set().union(*(tables[t] for t in used))
            selected = re.search(r"SELECT (.*?) FROM", sql, re.S | re.I)
            assert selected
            words = set(re.findall(r"\b([a-z_]+)\b", selected.group(1)))
            functions = {"date_trunc", "hour", "count", "max", "round", "numeric", "as", "time"}
            aliases = set(re.findall(r"\bAS\s+(\w+)", selected.group(1), re.I))
            unknown = words - columns - functions - aliases - {"metric"} - {"anomalies"}
            assert not unknown, f"{panel['title']}: no such column {unknown}"


def test_the_metric_variable_offers_exactly_the_session_metrics() -> None:
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    choice = next(v for v in variables if v["name"] == "metric")
    assert set(choice["query"].split(",")) == set(METRICS)
