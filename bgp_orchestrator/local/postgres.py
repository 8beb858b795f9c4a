"""Embedded PostgreSQL 16 from the ``pgserver`` package's binaries.

Listens on 127.0.0.1 only (TCP, no Unix socket) on ``BGPO_EMBEDDED_POSTGRES_PORT``
with trust authentication: it is a development database that nothing outside
this machine can reach. When run as root the server runs as the unprivileged
system user ``pgserver`` (PostgreSQL refuses to run as root), as pgserver does.
"""

from __future__ import annotations

import os
import subprocess
import time

import psutil

from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.local.ports import ensure_free, port_open
from bgp_orchestrator.local.process import terminate, wait_until
from bgp_orchestrator.settings import Settings

HOST = "127.0.0.1"
_SYSTEM_USER = "pgserver"


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


class EmbeddedPostgres:
    name = "postgres"
    title = "PostgreSQL (embedded)"

    def __init__(self, settings: Settings) -> None:
        self.pgdata = settings.data_dir / "postgres"
        self.port = settings.embedded_postgres_port
        self.database = settings.embedded_database
        self.log = self.pgdata / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{self.database}"

    def _run_as(self) -> dict[str, str]:
        return {"user": _SYSTEM_USER} if os.geteuid() == 0 else {}

    def _prepare_root(self) -> None:
        """As root: create the system user and let it reach the data and binaries."""
        if os.geteuid() != 0:
            return
        import pwd
        import stat

        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(_SYSTEM_USER)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        entry = pwd.getpwnam(_SYSTEM_USER)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or "postgres" not in proc.name():
                return None
            return pid
        except (FileNotFoundError, IndexError, ValueError, psutil.Error):
            return None

    def running(self) -> bool:
        return self.pid() is not None and port_open(HOST, self.port)

    def start(self) -> None:
        if self.running():
            return
        if self.pid() is None:
            ensure_free(HOST, self.port, "embedded PostgreSQL", "BGPO_EMBEDDED_POSTGRES_PORT")
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        self._prepare_root()
        if not (self.pgdata / "PG_VERSION").exists():
            self._check(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                ],
                "initdb",
            )
        self._start_server()
        if not wait_until(lambda: port_open(HOST, self.port), 30):
            raise ServiceUnavailable(
                "postgres-start-failed",
                f"embedded PostgreSQL did not open port {self.port}; see {self.log}",
            )
        self._create_database()

    def _start_server(self) -> None:
        """pg_ctl start, after a crash too.

        A postmaster that was killed leaves postmaster.pid behind, and while
        its pid is still a zombie (or reused) PostgreSQL takes the file for a
        live server; its orphaned backends also hold the shared memory for a
        moment. The file is stale when no live postgres has that pid, so it
        is removed, and the start is retried for a few seconds.
        """
        pidfile = self.pgdata / "postmaster.pid"
        argv = [
            _bin("pg_ctl"),
            "-D",
            str(self.pgdata),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-h {HOST} -p {self.port} -k ''",
            "start",
        ]
        deadline = time.monotonic() + 20
        while True:
            if self.pid() is None:
                pidfile.unlink(missing_ok=True)
            try:
                self._check(argv, "pg_ctl start")
                return
            except ServiceUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def _create_database(self) -> None:
        exists = subprocess.run(
            [
                _bin("psql"),
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                "SELECT datname FROM pg_database",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if self.database not in exists.stdout.split():
            self._check(
                [
                    _bin("createdb"),
                    "-h",
                    HOST,
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    self.database,
                ],
                "createdb",
                as_server_user=False,
            )

    def _check(self, argv: list[str], what: str, as_server_user: bool = True) -> None:
        kwargs = self._run_as() if as_server_user else {}
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd="/",
            **kwargs,  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            tail = ""
            if self.log.exists():
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise ServiceUnavailable(
                "postgres-start-failed",
                f"{what} failed (exit {result.returncode}): {result.stderr.strip()}\n{tail}",
            )

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        result = subprocess.run(
            [_bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd="/",
            **self._run_as(),  # type: ignore[call-overload]
        )
        if result.returncode != 0 and self.pid() is not None:
            terminate([psutil.Process(pid)])

    def describe(self) -> dict[str, str]:
        return {"url": self.url, "data": str(self.pgdata), "log": str(self.log)}
