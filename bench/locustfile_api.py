"""Read-heavy traffic for bench/api_latency.py: what an operator's tooling and portal send.

Per 100 requests: 30 session listings, 25 single-session reads, 15 prefix lookups
by covering address, 10 ASN listings, 10 filtered session listings, 5 health
checks, and 5 writes (a session created and deleted again).
"""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, constant, task

TENANT = os.environ.get("BENCH_TENANT", "bench")
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "1000"))
HEADERS = {"X-Tenant": TENANT}


class Operator(FastHttpUser):
    wait_time = constant(0)

    @task(30)
    def list_sessions(self) -> None:
        offset = random.randrange(0, SESSIONS, 20)
        self.client.get(
            f"/api/v1/sessions?limit=20&offset={offset}",
            headers=HEADERS,
            name="/api/v1/sessions?limit=20",
        )

    @task(25)
    def get_session(self) -> None:
        self.client.get(
            f"/api/v1/sessions/{random.randint(1, SESSIONS)}",
            headers=HEADERS,
            name="/api/v1/sessions/{id}",
        )

    @task(15)
    def covering_prefix(self) -> None:
        address = f"10.{random.randint(0, 3)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        self.client.get(
            f"/api/v1/prefixes?covers={address}", headers=HEADERS, name="/api/v1/prefixes?covers="
        )

    @task(10)
    def list_asns(self) -> None:
        self.client.get("/api/v1/asns?limit=50", headers=HEADERS, name="/api/v1/asns")

    @task(10)
    def sessions_of_peer(self) -> None:
        self.client.get(
            f"/api/v1/sessions?peer_asn={65000 + random.randint(0, 99)}",
            headers=HEADERS,
            name="/api/v1/sessions?peer_asn=",
        )

    @task(5)
    def health(self) -> None:
        self.client.get("/healthz")

    @task(5)
    def write(self) -> None:
        body = {
            "local_asn": 64500,
            "peer_asn": 65500,
            "peer_address": f"172.{random.randint(16, 31)}.{random.randint(0, 255)}."
            f"{random.randint(1, 254)}",
            "interconnect": "pni",
        }
        with self.client.post(
            "/api/v1/sessions",
            json=body,
            headers=HEADERS,
            name="/api/v1/sessions [POST]",
            catch_response=True,
        ) as r:
            if r.status_code == 409:  # the random address was taken: an expected answer
                r.success()
                return
            if r.status_code != 201:
                r.failure(f"HTTP {r.status_code}")
                return
            session_id = r.json()["id"]
        self.client.delete(
            f"/api/v1/sessions/{session_id}", headers=HEADERS, name="/api/v1/sessions/{id} [DELETE]"
        )
