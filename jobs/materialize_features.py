"""Move the newest flap features into the online store (Redis) with Feast.

    ray job submit --address http://127.0.0.1:8265 -- python -m jobs.materialize_features

The stack submits it every BGPO_MATERIALIZE_INTERVAL_S seconds and on
`POST /api/v1/features/materialize`.
"""

from __future__ import annotations

import argparse
import sys

from bgp_orchestrator.flaps import materialization
from bgp_orchestrator.local.services import endpoints
from bgp_orchestrator.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    settings = Settings()
    done = materialization.run(settings, endpoints(settings).redis_url)
    print(
        f"materialized features up to {done.end:%Y-%m-%d %H:%M:%S}Z: "
        f"{done.sessions:,} sessions in the online store ({done.seconds:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
