"""The daemons beneath OpenStack, from Debian's packages, each started by hand
with every file it writes under the cloud's directory: MariaDB, RabbitMQ and
Open vSwitch (its database server, and its switch on the userspace datapath,
since this kernel has no Open vSwitch module and loads none)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .layout import EXTERNAL_BRIDGE, HOST, RABBIT_PORT, CloudDirs
from .processes import Service, ServiceFailed, run_step, tcp_open, unix_socket_open

OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
# sun_path holds 108 bytes.
UNIX_SOCKET_MAX = 107


def ovs_env(dirs: CloudDirs) -> dict[str, str]:
    """What every Open vSwitch client (ovs-vsctl, ovs-ofctl, ovs-appctl, the
    agents) needs to find this switch rather than a system one."""
    return {
        "OVS_RUNDIR": str(dirs.run / "ovs"),
        "OVS_LOGDIR": str(dirs.logs),
        "OVS_DBDIR": str(dirs.data / "ovs"),
    }


def ovsdb_socket(dirs: CloudDirs) -> Path:
    return dirs.run / "ovs" / "db.sock"


def mysql_socket(dirs: CloudDirs) -> Path:
    return dirs.run / "mysqld.sock"


def check_socket_paths(dirs: CloudDirs) -> None:
    for path in (ovsdb_socket(dirs), mysql_socket(dirs)):
        if len(str(path)) > UNIX_SOCKET_MAX:
            raise ServiceFailed(
                f"the cloud's directory {dirs.root} is too deep: the socket {path} is longer than "
                f"{UNIX_SOCKET_MAX} bytes; set KVIP_CLOUD_DIR to a shorter path"
            )


# --- MariaDB ------------------------------------------------------------------


def mariadb(dirs: CloudDirs, env: Mapping[str, str]) -> Service:
    datadir = dirs.data / "mysql"
    log_path = dirs.logs / "mariadb.log"
    if not (datadir / "mysql").exists():
        datadir.mkdir(parents=True, exist_ok=True)
        run_step(
            "mariadb",
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            env,
            log_path,
        )
    return Service(
        name="mariadb",
        argv=[
            "mariadbd",
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={mysql_socket(dirs)}",
            f"--pid-file={dirs.run / 'mysqld.pid'}",
            "--user=root",
            # The socket only: nothing else on the machine reaches it.
            "--skip-networking",
            "--character-set-server=utf8mb4",
            "--max-connections=1000",
            # The services' connection pools hold many connections idle.
            "--innodb-buffer-pool-size=256M",
            "--skip-log-bin",
        ],
        env=env,
        log=log_path,
        ready=lambda: unix_socket_open(mysql_socket(dirs)),
    )


def create_databases(dirs: CloudDirs, env: Mapping[str, str], names: list[str], user: str, password: str) -> None:
    statements = [f"CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED BY '{password}';"]
    for name in names:
        statements.append(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4;")
        statements.append(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'localhost';")
    log_path = dirs.logs / "mariadb.log"
    result = subprocess.run(
        ["mariadb", f"--socket={mysql_socket(dirs)}", "-u", "root"],
        input="\n".join(statements),
        text=True,
        capture_output=True,
        env=dict(env),
    )
    if result.returncode != 0:
        raise ServiceFailed(f"mariadb: creating the databases failed: {result.stderr.strip()} (log: {log_path})")


# --- RabbitMQ -----------------------------------------------------------------


def rabbitmq(dirs: CloudDirs, env: Mapping[str, str]) -> Service:
    base = dirs.data / "rabbitmq"
    base.mkdir(parents=True, exist_ok=True)
    config = dirs.etc / "rabbitmq"
    config.mkdir(parents=True, exist_ok=True)
    (config / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {HOST}:{RABBIT_PORT}\nloopback_users.guest = true\nlog.console = true\n"
    )
    (config / "enabled_plugins").write_text("[].\n")
    rabbit_env = {
        **env,
        # The Erlang cookie goes to $HOME: keep it in the cloud's directory.
        "HOME": str(base),
        "RABBITMQ_NODENAME": "kvip-cloud@localhost",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(dirs.logs / "rabbitmq"),
        "RABBITMQ_CONFIG_FILE": str(config / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(config / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(dirs.run / "rabbitmq.pid"),
        "RABBITMQ_CONF_ENV_FILE": str(config / "rabbitmq-env.conf"),
        "RABBITMQ_DIST_PORT": "25672",
        "ERL_EPMD_ADDRESS": HOST,
    }
    (config / "rabbitmq-env.conf").write_text("")
    return Service(
        name="rabbitmq",
        argv=["/usr/lib/rabbitmq/bin/rabbitmq-server"],
        env=rabbit_env,
        log=dirs.logs / "rabbitmq.log",
        ready=lambda: tcp_open(RABBIT_PORT),
        ready_timeout=180,
    )


# --- Open vSwitch -------------------------------------------------------------


def ovsdb_server(dirs: CloudDirs, env: Mapping[str, str]) -> Service:
    database = dirs.data / "ovs" / "conf.db"
    (dirs.run / "ovs").mkdir(parents=True, exist_ok=True)
    full_env = {**env, **ovs_env(dirs)}
    if not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        run_step(
            "ovsdb-server", ["ovsdb-tool", "create", str(database), str(OVS_SCHEMA)], full_env, dirs.logs / "ovsdb.log"
        )
    return Service(
        name="ovsdb-server",
        argv=[
            "ovsdb-server",
            str(database),
            f"--remote=punix:{ovsdb_socket(dirs)}",
            "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
            f"--pidfile={dirs.run / 'ovs' / 'ovsdb-server.pid'}",
            f"--unixctl={dirs.run / 'ovs' / 'ovsdb-server.ctl'}",
            "--verbose=console:err",
        ],
        env=full_env,
        log=dirs.logs / "ovsdb-server.log",
        ready=lambda: unix_socket_open(ovsdb_socket(dirs)),
    )


def vsctl(dirs: CloudDirs, env: Mapping[str, str], *args: str) -> str:
    result = subprocess.run(
        ["ovs-vsctl", f"--db=unix:{ovsdb_socket(dirs)}", "--timeout=30", *args],
        env={**env, **ovs_env(dirs)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ServiceFailed(f"ovs-vsctl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def ovs_vswitchd(dirs: CloudDirs, env: Mapping[str, str]) -> Service:
    vsctl(dirs, env, "--no-wait", "init")
    full_env = {**env, **ovs_env(dirs)}
    return Service(
        name="ovs-vswitchd",
        argv=[
            "ovs-vswitchd",
            f"unix:{ovsdb_socket(dirs)}",
            # No kernel datapath: only the userspace (netdev) one.
            "--disable-system",
            f"--pidfile={dirs.run / 'ovs' / 'ovs-vswitchd.pid'}",
            f"--unixctl={dirs.run / 'ovs' / 'ovs-vswitchd.ctl'}",
            "--verbose=console:err",
        ],
        env=full_env,
        log=dirs.logs / "ovs-vswitchd.log",
        ready=lambda: (dirs.run / "ovs" / "ovs-vswitchd.ctl").exists(),
    )


def external_bridge(dirs: CloudDirs, env: Mapping[str, str], gateway_cidr: str) -> None:
    """br-ex on the userspace datapath, with this machine's address on its
    internal port (a TAP device): the uplink of the external network."""
    vsctl(
        dirs,
        env,
        "--may-exist",
        "add-br",
        EXTERNAL_BRIDGE,
        "--",
        "set",
        "Bridge",
        EXTERNAL_BRIDGE,
        "datapath_type=netdev",
        "fail_mode=standalone",
    )
    subprocess.run(["ip", "address", "replace", gateway_cidr, "dev", EXTERNAL_BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", EXTERNAL_BRIDGE, "up"], check=True)


def debian_programs_missing() -> list[str]:
    wanted = [
        "mariadbd",
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "/usr/lib/rabbitmq/bin/rabbitmq-server",
        "iptables",
        "conntrack",
        "ethtool",
        "ip",
    ]
    return [p for p in wanted if shutil.which(p) is None and not os.path.exists(p)]
