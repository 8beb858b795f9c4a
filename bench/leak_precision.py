"""Route-leak precision on real traffic: false alarms per 1,000 monitored prefixes, and
recall on leaks planted from published incidents.

    .venv/bin/python bench/leak_precision.py                       # the 2016 RIS file
    .venv/bin/python bench/leak_precision.py --files updates.20160811.1600.gz \\
        ris.rrc06.updates.1427846400.gz --sample 1000 --seed 7

Data: ``--data`` (default ``$BGPO_TEST_BGP_DATA``, else ``../shared/data/bgp`` next to
the checkout): MRT update files from ``mrt/`` and CAIDA's relationships
``asrel/20161101.as-rel.txt.bz2``.

Configuration, per file: every prefix the file announces (or a seeded sample of
``--sample``) is monitored by one tenant, each with the origin(s) the file shows for
it and, as its own ``upstream_asns``, every AS seen right before that origin. The file
is replayed in stream order through the detection pipeline in this process (the same
:class:`~bgp_orchestrator.detection.pipeline.Pipeline` ``bgpo`` runs, every detector,
200 updates a batch).

The time split: the first ``--learn-share`` (default 0.4) of the file's time span is
history the detector learns from (its own stream: the leak baseline); alarms are
counted on the rest, the *measured span*. Rates are scaled from the measured span:
alarms / (monitored / 1,000) / (span in hours), and x 24 per day. With a 5-minute file
one alarm in the measured span of the 2016 file is already ~280 per 1,000 prefixes a
day, so the goal
(at most 1) means none at all, and a run of a few files can only bound the rate (the
JSON gives what one alert amounts to, and the 95 % upper bound when none was seen).
The detector's ``leak_baseline_s`` is set to the learnt span (the production default is
an hour of stream: a leaker/neighbour pair seen leaking an hour ago is long-standing);
``--cold`` also measures a detector that starts
at the measured span with no history.

Counted: distinct route-leak conflicts (one per tenant, prefix, origin and leak
link, as the conflicts table stores them) on background routes: *alerts* (severity
above ``info``) and *observations* (severity ``info``, ``details.alert`` false).
Configurations measured in the same run, on the same updates:

* ``naive``: plain valley-free over the CAIDA file (every known link taken as
  inferred, no sibling or open-peering rule), every violation an alarm;
* ``before``: the detector with ``leak_min_confidence`` 0 - every violation its
  judge finds is an alert, as it was before evidence and confidence existed;
* ``after``: the detector with its defaults (``leak_min_confidence`` 0.6).

Planted leaks (collector name ``planted-<incident>``, so they are told apart from
the background), inserted into the measured span, shaped on the published facts:

* ``telekom-malaysia-2015``: on 2015-06-12 from 08:43 UTC, AS4788 (Telekom
  Malaysia) announced about 179,000 routes it had learnt from its providers and peers
  to its provider AS3549 (Level3, formerly Global Crossing), which accepted and
  propagated them (type 1/3 leaks). Planted: up to 200 monitored prefixes whose real
  path crosses one of AS4788's providers or peers (CAIDA), leaked as
  ``... 3549 4788 <that neighbour> ... origin`` within 120 s and seen by 10 collector
  peers. CAIDA's 2016 file no longer has the 3549-4788 link: the 2015 one
  (``3549|4788|-1``) is added, as published.
* ``google-ntt-ocn-2017``: on 2017-08-25 at 03:22 UTC AS15169 (Google) leaked over
  160,000 routes learnt from its peers - more-specifics of routed prefixes, 25,000 of
  them NTT OCN's (AS4713) - to its provider AS701 (Verizon), which passed them on (a
  type 4 leak; CAIDA 2016 has 701 as Google's provider). Planted: up to 200 prefixes
  whose real path crosses one of Google's peers (AS4713 first), announced as a more
  specific (one bit longer, at most /24 or /48) with ``... 701 15169 <peer> ...``
  within 60 s, seen by 10 peers.
* ``enzu-2015``: in 2015 AS18978 (Enzu) leaked routes learnt from its transit
  providers and peers to another of its providers, which accepted them. Planted: 40
  prefixes via one of its CAIDA providers/peers other than AS174, exported to its
  provider AS174 (``... 174 18978 <neighbour> ...``) within 60 s, seen by 5 peers.
* ``as7007-1997``: on 1997-04-25 AS7007 (MAI) de-aggregated the table into /24s,
  stripped the paths and announced them as its own to its provider AS1239 (Sprint).
  Planted: 100 /24s of monitored prefixes as ``... 1239 7007`` within 60 s, seen by 10
  peers. Its paths are re-originated, so there is no valley for the route-leak
  detector to judge: it is reported apart (caught as a sub-prefix or exact-prefix
  hijack) and left out of the route-leak recall.

A planted leak is *alerted* when at least one of its routes raised a route-leak alert
naming its leaker; its per-prefix share is also reported. The table comes first; the
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgp_orchestrator.bgp.parsers import mrt
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.detection import scenario
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.detectors.leaks import LeakJudge
from bgp_orchestrator.detection.pipeline import Pipeline
from bgp_orchestrator.reference import asrel
from bgp_orchestrator.reference.asrel import Rel, Relationships

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILES = ("updates.20160811.1600.gz",)
ASREL = "asrel/20161101.as-rel.txt.bz2"
BATCH = 200
TENANT = 1
PLANTED = "planted-"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Incident:
    name: str
    leaker: int
    sent_to: int
    #: "providers+peers", "peers" or "providers+peers-except-sent_to": whose routes leak
    sources: str
    prefixes: int
    duration_s: float
    peers: int
    #: relationship lines the 2016 inference lacks, as published for the incident
    extra_links: tuple[str, ...] = ()
    more_specific: bool = False
    prefer: tuple[int, ...] = ()
    #: True: the path is re-originated (no valley); not part of the route-leak recall
    reoriginated: bool = False


INCIDENTS = (
    Incident(
        "telekom-malaysia-2015", 4788, 3549, "providers+peers", 200, 120.0, 10, ("3549|4788|-1",)
    ),
    Incident(
        "google-ntt-ocn-2017",
        15169,
        701,
        "peers",
        200,
        60.0,
        10,
        more_specific=True,
        prefer=(4713,),
    ),
    Incident("enzu-2015", 18978, 174, "providers+peers", 40, 60.0, 5),
    Incident("as7007-1997", 7007, 1239, "", 100, 60.0, 10, reoriginated=True),
)


def dedup(path: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for element in path:
        if not out or out[-1] != element:
            out.append(element)
    return out


def read_updates(path: Path) -> list[Update]:
    updates: list[Update] = []
    errors = 0
    for record in mrt.read(path):
        if record.error is not None:
            errors += 1
        updates.extend(record.updates or ())
    if errors:
        log(f"{path.name}: {errors} records could not be read (skipped)")
    updates.sort(key=lambda u: u.timestamp)
    return updates


def monitored_rows(updates: list[Update], sample: int, seed: int) -> list[dict[str, Any]]:
    origins: dict[str, set[int]] = defaultdict(set)
    upstreams: dict[str, set[int]] = defaultdict(set)
    for u in updates:
        if u.kind != Kind.ANNOUNCE or not u.as_path:
            continue
        path = dedup(u.as_path)
        if isinstance(path[-1], int):
            origins[u.prefix].add(path[-1])
            if len(path) > 1 and isinstance(path[-2], int):
                upstreams[u.prefix].add(path[-2])
    prefixes = sorted(origins)
    if sample and sample < len(prefixes):
        prefixes = sorted(random.Random(seed).sample(prefixes, sample))
    return [
        {
            "tenant_id": TENANT,
            "prefix": prefix,
            "origin_asns": sorted(origins[prefix]),
            "max_length": int(prefix.split("/")[1]),
            "announced": True,
            "upstream_asns": sorted(upstreams[prefix]),
        }
        for prefix in prefixes
    ]


def neighbours(
    rels: Relationships, asn: int, roles: set[Rel], candidates: Iterable[int]
) -> set[int]:
    return {a for a in candidates if rels.get(a, asn) in roles}


def more_specific(prefix: str) -> str:
    net = ipaddress.ip_network(prefix)
    limit = 24 if net.version == 4 else 48
    if net.prefixlen >= limit:
        return prefix
    return str(next(net.subnets(prefixlen_diff=1)))


def first_24(prefix: str) -> str:
    net = ipaddress.ip_network(prefix)
    limit = 24 if net.version == 4 else 48
    if net.prefixlen >= limit:
        return prefix
    return str(next(net.subnets(new_prefix=limit)))


def plant(
    incident: Incident,
    background: list[Update],
    monitored: set[str],
    rels: Relationships,
    judge: LeakJudge,
    start: float,
    rng: random.Random,
) -> list[Update]:
    """The planted announcements of one incident (see the module docstring)."""
    peers: dict[int, str] = {}
    for u in background:
        peers.setdefault(u.peer_asn, u.peer_address)
    # Collector peers that see the leak: the receiver itself if it is one, then others.
    seen_by = [a for a in sorted(peers) if a == incident.sent_to]
    others = [a for a in sorted(peers) if a not in (incident.sent_to, incident.leaker)]
    rng.shuffle(others)
    seen_by += others[: incident.peers - len(seen_by)]
    # One real path per monitored prefix (the first announcement of it).
    paths: dict[str, list[Any]] = {}
    for u in background:
        if (
            u.kind == Kind.ANNOUNCE
            and u.as_path
            and u.prefix in monitored
            and u.prefix not in paths
        ):
            path = dedup(u.as_path)
            if all(isinstance(a, int) for a in path):
                paths[u.prefix] = path
    prefixes = sorted(paths)
    rng.shuffle(prefixes)
    routes: list[tuple[str, list[int]]] = []
    if incident.reoriginated:
        chosen = prefixes[: incident.prefixes]
        routes = [(first_24(p), [incident.sent_to, incident.leaker]) for p in chosen]
    else:
        all_ases = {a for path in paths.values() for a in path}
        roles = {Rel.PEER} if incident.sources == "peers" else {Rel.PROVIDER, Rel.PEER}
        sources = neighbours(rels, incident.leaker, roles, all_ases) - {incident.sent_to}
        preferred = [p for p in prefixes if set(incident.prefer) & set(paths[p])]
        ordered = preferred + [p for p in prefixes if p not in preferred]
        for prefix in ordered:
            path = paths[prefix]
            at = next((i for i, a in enumerate(path) if a in sources), None)
            if at is None:
                continue
            tail = path[at:]
            if incident.leaker in tail or incident.sent_to in tail:
                continue
            if len(tail) >= 3 and judge.judge(tail) is not None:
                continue  # the real path already has a valley: not a clean plant
            leaked = [incident.sent_to, incident.leaker, *tail]
            found = judge.judge(leaked)
            if found is None or found.leaker != incident.leaker:
                continue  # the inference would not show this route as the incident's leak
            announced = more_specific(prefix) if incident.more_specific else prefix
            routes.append((announced, leaked))
            if len(routes) >= incident.prefixes:
                break
    out: list[Update] = []
    step = incident.duration_s / max(1, len(routes))
    for i, (prefix, leaked) in enumerate(routes):
        for j, peer_asn in enumerate(seen_by):
            path = leaked if peer_asn == incident.sent_to else [peer_asn, *leaked]
            if peer_asn in leaked[1:]:
                continue
            out.append(
                Update(
                    Kind.ANNOUNCE,
                    start + i * step + j * 0.5,
                    peers[peer_asn],
                    peer_asn,
                    prefix,
                    tuple(path),
                    source="mrt",
                    collector=PLANTED + incident.name,
                )
            )
    return out


def naive_violations(path: list[Any], rels: Relationships) -> list[str]:
    """Plain valley-free: every (sender, AS, receiver) where the AS got the route from a
    provider or peer and passed it to a provider or peer, as the inference says."""
    out = []
    for i in range(len(path) - 2, 0, -1):
        sender, leaker, receiver = path[i + 1], path[i], path[i - 1]
        inbound, outbound = rels.get(sender, leaker), rels.get(receiver, leaker)
        if inbound in (Rel.PROVIDER, Rel.PEER) and outbound in (Rel.PROVIDER, Rel.PEER):
            out.append(f"{sender}>{leaker}>{receiver}")
    return out


@dataclass
class Count:
    alerts: set[str] = field(default_factory=set)
    observations: set[str] = field(default_factory=set)
    #: incident -> planted prefixes with an alert naming its leaker
    planted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: incident -> conflict types alerted on its routes (for the re-originated one)
    planted_types: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    seconds: float = 0.0
    examples: list[dict[str, Any]] = field(default_factory=list)


def run_pipeline(
    ref_json: dict[str, Any],
    rels: Relationships,
    updates: list[Update],
    measure_from: float,
    incidents: dict[str, Incident],
    settings: dict[str, Any],
) -> Count:
    ref = scenario.reference_from_json({**ref_json, "settings": settings}, "bench-leaks")
    ref.relationships = rels
    pipeline = Pipeline(ref)
    count = Count()
    started = time.perf_counter()
    conflicts: list[Conflict] = []
    for i in range(0, len(updates), BATCH):
        conflicts.extend(pipeline.process(updates[i : i + BATCH]).conflicts)
    count.seconds = time.perf_counter() - started
    if pipeline.errors:
        raise SystemExit(f"detector errors: {pipeline.errors}")
    for c in conflicts:
        planted = c.peer.startswith(PLANTED)
        if planted:
            name = c.peer.split("|", 1)[0].removeprefix(PLANTED)
            if c.severity is not Severity.INFO:
                count.planted_types[name].add(c.type.value)
                if (
                    c.type is ConflictType.ROUTE_LEAK
                    and c.details.get("leaker") == incidents[name].leaker
                ):
                    count.planted[name].add(c.prefix)
            continue
        if c.type is not ConflictType.ROUTE_LEAK or c.seen_at < measure_from:
            continue
        if c.severity is Severity.INFO:
            count.observations.add(c.key)
        else:
            if c.key not in count.alerts and len(count.examples) < 5:
                count.examples.append(
                    {"prefix": c.prefix, "path": c.as_path, "link": c.detail_key, **c.details}
                )
            count.alerts.add(c.key)
    return count


def naive_count(
    updates: list[Update], monitored_ref: Any, rels: Relationships, measure_from: float
) -> Count:
    count = Count()
    covering = monitored_ref.monitored.covering
    from bgp_orchestrator.bgp.prefix import parse_net

    for u in updates:
        if u.kind != Kind.ANNOUNCE or u.timestamp < measure_from or not u.as_path:
            continue
        path = dedup(u.as_path)
        if len(path) < 3 or any(isinstance(a, tuple) for a in path):
            continue
        if not covering(parse_net(u.prefix)):
            continue
        for link in naive_violations(path, rels):
            if u.collector.startswith(PLANTED):
                continue
            count.alerts.add(f"{u.prefix}|{link}")
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("BGPO_TEST_BGP_DATA") or str(ROOT.parent / "shared/data/bgp")
    parser.add_argument("--data", default=default_data, help="the real-data folder")
    parser.add_argument("--files", nargs="+", default=list(DEFAULT_FILES), help="MRT files in mrt/")
    parser.add_argument("--asrel", default=ASREL, help="CAIDA relationships, relative to --data")
    parser.add_argument("--sample", type=int, default=0, help="monitor a seeded sample (0: all)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--learn-share", type=float, default=0.4)
    parser.add_argument("--min-confidence", type=float, default=0.6)
    parser.add_argument("--cold", action="store_true", help="also measure without history")
    args = parser.parse_args(argv)

    data = Path(args.data)
    if not (data / "mrt").is_dir():
        raise SystemExit(f"no real BGP data under {data} (set --data or BGPO_TEST_BGP_DATA)")
    log(f"relationships {args.asrel}")
    base_rels = asrel.load(data / args.asrel)
    rels = Relationships()
    rels.update(base_rels)
    for incident in INCIDENTS:
        for line in incident.extra_links:
            a, b, code = (int(x) for x in line.split("|"))
            rels.add(a, b, code)
    judge = LeakJudge(rels, 1000)
    incidents = {i.name: i for i in INCIDENTS}

    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    recall_hits: dict[str, dict[str, int]] = defaultdict(dict)
    planted_sizes: dict[str, int] = {}
    reoriginated: dict[str, list[str]] = {}
    prefix_hours = 0.0
    files_used = []
    rows = []
    examples: list[dict[str, Any]] = []
    for name in args.files:
        path = data / "mrt" / name
        log(f"reading {path.name}")
        background = read_updates(path)
        announced = [u for u in background if u.kind == Kind.ANNOUNCE]
        if not announced:
            log(f"{name}: no announcements, skipped")
            continue
        t0, t1 = background[0].timestamp, background[-1].timestamp
        span = max(1.0, t1 - t0)
        measure_from = t0 + args.learn_share * span
        measured_h = (t1 - measure_from) / 3600
        rows_m = monitored_rows(background, args.sample, args.seed)
        monitored = {r["prefix"] for r in rows_m}
        ref_json = {"tenants": [{"id": TENANT, "asns": [], "neighbors": {}}], "prefixes": rows_m}
        rng = random.Random(args.seed)
        planted: list[Update] = []
        plant_at = measure_from + 0.1 * (t1 - measure_from)
        for incident in INCIDENTS:
            got = plant(incident, background, monitored, rels, judge, plant_at, rng)
            planted_sizes[f"{name}:{incident.name}"] = len({u.prefix for u in got})
            planted.extend(got)
        stream = sorted(background + planted, key=lambda u: u.timestamp)
        learnt = measure_from - t0
        settings_after = {"leak_min_confidence": args.min_confidence, "leak_baseline_s": learnt}
        configs = {
            "before": {"leak_min_confidence": 0.0, "leak_baseline_s": learnt},
            "after": settings_after,
        }
        results: dict[str, Count] = {}
        for label, settings in configs.items():
            log(f"{name}: {label} ({len(stream)} updates, {len(monitored)} monitored prefixes)")
            results[label] = run_pipeline(ref_json, rels, stream, measure_from, incidents, settings)
        if args.cold:
            cold = [u for u in stream if u.timestamp >= measure_from]
            results["after-cold"] = run_pipeline(
                ref_json, rels, cold, measure_from, incidents, settings_after
            )
        results["naive"] = naive_count(
            stream, scenario.reference_from_json(ref_json, "naive"), rels, measure_from
        )
        examples.extend(results["after"].examples)
        prefix_hours += len(monitored) / 1000 * measured_h
        files_used.append(
            {
                "file": f"mrt/{name}",
                "updates": len(background),
                "monitored_prefixes": len(monitored),
                "measured_from_s": round(measure_from - t0, 1),
                "measured_s": round(t1 - measure_from, 1),
                "planted_updates": len(planted),
            }
        )
        for label, count in results.items():
            totals[label]["alerts"] += len(count.alerts)
            totals[label]["observations"] += len(count.observations)
            for incident in INCIDENTS:
                size = planted_sizes[f"{name}:{incident.name}"]
                if not size:
                    continue
                if incident.reoriginated:
                    reoriginated[f"{label}:{incident.name}"] = sorted(
                        count.planted_types[incident.name]
                    )
                    continue
                hits = len(count.planted[incident.name])
                recall_hits[label][f"{name}:{incident.name}"] = hits
            rows.append((name, label, len(count.alerts), len(count.observations), count.seconds))

    def per_day(n: float) -> float:
        return round(n / prefix_hours * 24, 2) if prefix_hours else 0.0

    summary: dict[str, Any] = {}
    print(f"{'file':34} {'config':11} {'alerts':>7} {'observ.':>8} {'seconds':>8}")
    for name, label, alerts, observations, seconds in rows:
        print(f"{name:34} {label:11} {alerts:7} {observations:8} {seconds:8.2f}")
    print()
    print(
        f"{'config':11} {'alerts/1k/h':>12} {'alerts/1k/day':>14} {'obs/1k/day':>11} "
        f"{'recall':>7} {'prefix share':>13}"
    )
    for label, t in totals.items():
        hits = recall_hits.get(label, {})
        leak_incidents = {
            k: v
            for k, v in planted_sizes.items()
            if not incidents[k.split(":")[1]].reoriginated and v
        }
        found = sum(1 for k in leak_incidents if hits.get(k, 0) > 0) if label != "naive" else None
        recall = (
            round(found / len(leak_incidents), 3) if found is not None and leak_incidents else None
        )
        share = (
            round(sum(hits.get(k, 0) for k in leak_incidents) / sum(leak_incidents.values()), 3)
            if label != "naive" and leak_incidents
            else None
        )
        summary[label] = {
            "alerts": int(t["alerts"]),
            "observations": int(t["observations"]),
            "alerts_per_1k_prefixes_per_hour": round(t["alerts"] / prefix_hours, 2)
            if prefix_hours
            else 0.0,
            "alerts_per_1k_prefixes_per_day": per_day(t["alerts"]),
            "observations_per_1k_prefixes_per_day": per_day(t["observations"]),
            "planted_leak_recall": recall,
            "planted_prefix_share": share,
        }
        s = summary[label]
        print(
            f"{label:11} {s['alerts_per_1k_prefixes_per_hour']:12} "
            f"{s['alerts_per_1k_prefixes_per_day']:14} "
            f"{s['observations_per_1k_prefixes_per_day']:11} {recall!s:>7} {share!s:>13}"
        )
    print()
    for key, size in planted_sizes.items():
        incident = incidents[key.split(":")[1]]
        if incident.reoriginated:
            print(
                f"{key}: {size} prefixes planted; alerted as "
                f"{reoriginated.get('after:' + incident.name)}"
            )
        else:
            per = {label: recall_hits[label].get(key, 0) for label in recall_hits}
            print(f"{key}: {size} prefixes planted; prefixes alerted {per}")
    for example in examples[:5]:
        print(
            "alert on background:",
            json.dumps(
                {k: example[k] for k in ("prefix", "path", "link", "evidence", "confidence")},
                default=str,
            ),
        )
    after = summary["after"]
    print(
        json.dumps(
            {
                "files": files_used,
                "relationships": args.asrel,
                "learn_share": args.learn_share,
                "leak_min_confidence": args.min_confidence,
                "monitored_prefix_hours_k": round(prefix_hours, 4),
                # what one alert in the measured spans amounts to, and the 95 % upper
                # bound of the rate when none was seen (Poisson: 3.0 events)
                "one_alert_is_per_1k_prefixes_per_day": per_day(1),
                "upper_95_if_none_per_1k_prefixes_per_day": per_day(3.0),
                "leak_alerts_per_1k_prefixes_per_hour": after["alerts_per_1k_prefixes_per_hour"],
                "leak_alerts_per_1k_prefixes_per_day": after["alerts_per_1k_prefixes_per_day"],
                "leak_observations_per_1k_prefixes_per_day": after[
                    "observations_per_1k_prefixes_per_day"
                ],
                "planted_leak_recall": after["planted_leak_recall"],
                "planted_prefix_share": after["planted_prefix_share"],
                "as7007_alerted_as": reoriginated.get("after:as7007-1997"),
                "baseline_before": summary["before"],
                "baseline_naive": summary["naive"],
                **({"after_cold": summary["after-cold"]} if "after-cold" in summary else {}),
                "planted_prefixes": planted_sizes,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
