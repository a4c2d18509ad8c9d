"""A real PgBouncer, in transaction pooling mode, in front of the test database.

Debian's ``pgbouncer`` package (``.ci/run`` installs it). Each one runs from
a temporary directory of its own on a free loopback port: the package's own
service (port 6432), started or not, plays no part.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psycopg
from django.db import connection

from tests.workers import wait_until

# PgBouncer refuses to run as root: it is then told to switch to this user.
UNPRIVILEGED_USER = "nobody"
# What PgBouncer itself keeps per client and sets again on every server
# connection it hands over: not a leak when found set on a session.
TRACKED_BY_PGBOUNCER = ("client_encoding", "DateStyle", "TimeZone",
                        "standard_conforming_strings", "application_name")
PORT_ATTEMPTS = 5  # another process may take the free port first


def executable():
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if found is None:
        raise FileNotFoundError(
            "pgbouncer is not installed: the PgBouncer tests need Debian's package "
            "(apt-get install pgbouncer; .ci/run installs it when missing)")
    return found


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _quoted(value):
    """A value for a libpq connection string."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class PgBouncer:
    """One PgBouncer process for the database of Django's ``settings_dict``,
    with ``pool_size`` server connections at most."""

    def __init__(self, settings_dict, pool_size=1):
        self.target = dict(settings_dict)
        self.pool_size = pool_size
        self.directory = None
        self.process = None
        self.port = None

    @property
    def name(self):
        return str(self.target["NAME"])

    @property
    def database(self):
        """Django's settings for the test database through this PgBouncer."""
        return {**{key: self.target[key] for key in
                   ("ENGINE", "USER", "PASSWORD", "OPTIONS")},
                "NAME": self.name, "HOST": "127.0.0.1", "PORT": str(self.port)}

    def start(self):
        command = [executable()]
        self.directory = Path(tempfile.mkdtemp(prefix="django_tasks_pgbouncer_"))
        if os.geteuid() == 0:
            command += ["-u", UNPRIVILEGED_USER]
        for _ in range(PORT_ATTEMPTS):
            self.port = _free_port()
            config = self._write_config()
            self.process = subprocess.Popen([*command, str(config)], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            try:
                wait_until(self._ready, timeout=30, interval=0.05,
                           message=f"PgBouncer to accept connections on port {self.port}")
                return self
            except PortTaken:
                continue
        raise AssertionError(f"PgBouncer found no free port in {PORT_ATTEMPTS} attempts:\n"
                             + self.log())

    def _write_config(self):
        target = self.target
        server = {"host": target["HOST"] or "localhost", "port": target["PORT"] or "5432",
                  "dbname": self.name, "user": target["USER"] or "postgres"}
        if target["PASSWORD"]:
            server["password"] = target["PASSWORD"]
        log = self.directory / "pgbouncer.log"
        log.unlink(missing_ok=True)
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"{self.name} = {' '.join(f'{k}={_quoted(v)}' for k, v in server.items())}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            # Loopback only; every client logs in to the server as the
            # database line's user.
            "auth_type = any\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\n"
            "max_client_conn = 500\n"
            f"logfile = {log}\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED_USER)
            for path in (self.directory, config):
                os.chown(path, user.pw_uid, user.pw_gid)
        return config

    def _ready(self):
        if self.process.poll() is not None:
            log = self.log()
            if "Address already in use" in log:
                raise PortTaken
            raise AssertionError(f"PgBouncer exited with code {self.process.returncode}:\n{log}")
        try:
            with self.connect() as client:
                client.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def log(self):
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def connect(self):
        """A new client connection (psycopg, autocommit) through this PgBouncer."""
        target = self.target
        return psycopg.connect(host="127.0.0.1", port=self.port, dbname=self.name,
                               user=target["USER"] or "postgres",
                               password=target["PASSWORD"] or None, autocommit=True,
                               connect_timeout=5)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: closes every connection and exits
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


class PortTaken(Exception):
    """The free port was taken before PgBouncer could listen on it."""


def session_state(client):
    """What a session carries from one transaction to the next, as seen by
    ``client``: settings made for the session, prepared statements, LISTENs,
    cursors kept open, temporary tables, advisory locks. Empty in a fresh one."""
    state = {}
    for query, label in (
            ("SELECT name, setting FROM pg_settings WHERE source = 'session' "
             "AND name <> ALL(%s)", "setting"),
            ("SELECT name, statement FROM pg_prepared_statements", "prepared statement"),
            ("SELECT pg_listening_channels(), ''", "LISTEN"),
            ("SELECT name, statement FROM pg_cursors", "cursor"),
            ("SELECT relname, '' FROM pg_class WHERE relnamespace = pg_my_temp_schema()",
             "temporary table"),
            ("SELECT objid::text, mode FROM pg_locks WHERE locktype = 'advisory' "
             "AND pid = pg_backend_pid()", "advisory lock")):
        params = [list(TRACKED_BY_PGBOUNCER)] if "%s" in query else None
        for name, value in client.execute(query, params).fetchall():
            state[f"{label} {name}"] = value
    return state


@contextmanager
def django_connected_through(bouncer):
    """This process's default database connection through ``bouncer`` for
    the block (a new session), then back to the test database directly."""
    settings_dict = connection.settings_dict
    saved = {key: settings_dict[key] for key in ("HOST", "PORT")}
    connection.close()
    settings_dict.update(HOST="127.0.0.1", PORT=str(bouncer.port))
    try:
        yield
    finally:
        connection.close()
        settings_dict.update(saved)
