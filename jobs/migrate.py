"""Apply the database migrations as a Ray job.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python -m jobs.migrate

Used by cluster/rayjob-migrate.yaml before a RayService rollout; locally
`bgpo migrate` does the same without Ray.
"""

from __future__ import annotations

import argparse
import sys

from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage import migrate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    args = parser.parse_args(argv)
    settings = Settings()
    if settings.database_url is None:
        print("BGPO_DATABASE_URL is not set in the job's environment", file=sys.stderr)
        return 2
    dsn = settings.database_url.get_secret_value()
    migrate.upgrade(dsn, args.revision)
    print(f"database at revision {migrate.current_revision(dsn)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
