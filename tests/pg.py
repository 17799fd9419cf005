"""PostgreSQL for the tests: $SHIPPER_TEST_PG_DSN, else 127.0.0.1:5432, else a private cluster.

A private cluster is started with the server's own initdb/pg_ctl (as the ``postgres`` user when
the tests run as root) on a free port under a temp dir, and stopped at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from typing import Any

import psycopg

# Logto's table, exactly (packages/schemas/tables/logs.sql, with its indexes since 1.35).
LOGS_DDL = """
create table logs (
  tenant_id varchar(21) not null,
  id varchar(21) not null,
  key varchar(128) not null,
  payload jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default(now()),
  primary key (id)
);
create index logs__key on logs (tenant_id, key);
create index logs__user_id on logs (tenant_id, (payload->>'userId'));
create index logs__application_id on logs (tenant_id, (payload->>'applicationId'));
create index logs__hook_id on logs (tenant_id, (payload->>'hookId'));
create index logs__created_at_id on logs (tenant_id, created_at, id);
"""


def _can_connect(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self) -> None:
        self.admin_dsn = ""
        self.how = ""
        self._datadir: str | None = None
        self._run_as: list[str] = []
        self._bindir = ""

    def start(self) -> PgServer:
        env_dsn = os.environ.get("SHIPPER_TEST_PG_DSN")
        if env_dsn:
            self.admin_dsn, self.how = env_dsn, "SHIPPER_TEST_PG_DSN"
            return self
        local = "postgresql://postgres@127.0.0.1:5432/postgres"
        if _can_connect(local):
            self.admin_dsn, self.how = local, "the server already running on 127.0.0.1:5432"
            return self
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or (
            [shutil.which("initdb")] if shutil.which("initdb") else []
        )
        if not bins:
            raise RuntimeError("no PostgreSQL reachable and no initdb to start one")
        self._bindir = os.path.dirname(bins[-1])
        self._datadir = tempfile.mkdtemp(prefix="shipper-pg-")
        if os.geteuid() == 0:
            shutil.chown(self._datadir, "postgres", "postgres")
            self._run_as = ["runuser", "-u", "postgres", "--"]
        port = _free_port()
        subprocess.run(
            [
                *self._run_as,
                f"{self._bindir}/initdb",
                "-D",
                self._datadir,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *self._run_as,
                f"{self._bindir}/pg_ctl",
                "-D",
                self._datadir,
                "-w",
                "-o",
                f"-p {port} -k {self._datadir} -c listen_addresses=127.0.0.1",
                "-l",
                f"{self._datadir}/log",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        self.admin_dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.how = f"a private cluster started for the tests on port {port}"
        return self

    def stop(self) -> None:
        if self._datadir:
            subprocess.run(
                [
                    *self._run_as,
                    f"{self._bindir}/pg_ctl",
                    "-D",
                    self._datadir,
                    "-m",
                    "fast",
                    "stop",
                ],
                capture_output=True,
            )
            shutil.rmtree(self._datadir, ignore_errors=True)

    def database(self) -> str:
        """A fresh database with Logto's logs table; returns its DSN."""
        name = f"shipper_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute(f"create database {name}")
        dsn = self.admin_dsn.rsplit("/", 1)[0] + f"/{name}"
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(LOGS_DDL)
        return dsn

    def drop(self, dsn: str) -> None:
        name = dsn.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute(f"alter database {name} allow_connections true")
            c.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (name,))
            c.execute(f"drop database if exists {name}")

    def block(self, dsn: str, blocked: bool) -> None:
        """Make the database refuse connections and drop existing ones (as a restart does)."""
        name = dsn.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute(f"alter database {name} allow_connections {'false' if blocked else 'true'}")
            if blocked:
                c.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
                    (name,),
                )


# The columns of Logto's tables that names come from (plus a few neighbours), as Logto defines them.
NAME_TABLES = """
create table applications (
  tenant_id varchar(21) not null, id varchar(21) not null primary key, name varchar(256) not null,
  secret varchar(64) not null default '', description text, type varchar(64) not null,
  created_at timestamptz not null default now());
create table users (
  tenant_id varchar(21) not null, id varchar(12) not null primary key, username varchar(128),
  primary_email varchar(128), primary_phone varchar(128), name varchar(128), avatar varchar(2048),
  created_at timestamptz not null default now());
"""


def insert(dsn: str, rows: list[tuple[Any, ...]]) -> None:
    """rows: (tenant_id, id, key, payload_json, created_at)"""
    with psycopg.connect(dsn, autocommit=True) as c, c.cursor() as cur:
        cur.executemany(
            "insert into logs (tenant_id, id, key, payload, created_at) values (%s, %s, %s, %s, %s)",
            rows,
        )


def wait_until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")
