"""``replenish device``: join, revoke and list devices on the household broker.

    replenish device init --hostname gw --ip 192.168.1.5   # once: CA, broker cert, config
    replenish device add printer-1 --kind printer          # prints what to put in the device
    replenish device remove printer-1
    replenish device list

Paths come from the ``[broker]`` settings section when present (Debian defaults
otherwise); the flags override both. Run as root on the gateway: the files belong to
mosquitto's configuration.
"""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from agent.config import BrokerSettings, Settings
from agent.domain import DeviceKind, JsonObject
from agent.errors import BrokerError
from agent.ops import provisioning as prov
from agent.ops.filetx import FileTransaction
from agent.wire.device import Channel, device_topic

KINDS = [k.value for k in DeviceKind]
# Where systemd/replenish-agent.service loads its MQTT password credential from.
DEFAULT_AGENT_PASSWORD_FILE = Path("/etc/credstore/replenish-agent-mqtt-password")
DEFAULT_HOUSEHOLD_PASSWORD_FILE = Path("/etc/replenish-agent/household-mqtt-password")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("device", help="add, remove and list devices on the broker")
    parser.add_argument("--password-file", type=Path, help="mosquitto password file")
    parser.add_argument("--acl-file", type=Path, help="mosquitto ACL file")
    parser.add_argument("--registry-file", type=Path, help="device list (JSON, no secrets)")
    parser.add_argument("--ca-dir", type=Path, help="household CA directory")
    parser.add_argument("--pid-file", type=Path, help="mosquitto pid file (SIGHUP on change)")
    parser.add_argument("--reload-command", help="e.g. 'systemctl reload mosquitto'")
    parser.add_argument(
        "--no-reload", action="store_true", help="change files only, do not signal mosquitto"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    actions = parser.add_subparsers(dest="device_action", metavar="ACTION", required=True)
    # `device list --json` (the README's spelling) as well as `device --json list`:
    # SUPPRESS keeps the subcommand from resetting a --json given before it.
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                           help="machine-readable output")

    add = actions.add_parser("add", parents=[json_flag], help="create credentials for a new device")
    add.add_argument("device_id", metavar="ID")
    add.add_argument("--kind", required=True, choices=KINDS)
    add.add_argument("--cert", action="store_true", help="client certificate instead of a password")
    add.set_defaults(func=_add)

    remove = actions.add_parser("remove", parents=[json_flag], help="revoke a device's credentials")
    remove.add_argument("device_id", metavar="ID")
    remove.set_defaults(func=_remove)

    listing = actions.add_parser("list", parents=[json_flag], help="devices known to the broker")
    listing.set_defaults(func=_list)

    init = actions.add_parser(
        "init", parents=[json_flag], help="set up CA, broker certificate, config, accounts"
    )
    init.add_argument("--hostname", default=socket.gethostname(), help="gateway host name")
    init.add_argument("--ip", action="append", default=[], help="gateway LAN address (repeat)")
    init.add_argument("--conf-file", type=Path, default=prov.DEFAULT_CONF_FILE)
    init.add_argument("--local-port", type=int, default=1883, help="loopback listener")
    init.add_argument("--tls-port", type=int, help=f"default {prov.DEFAULT_TLS_PORT}")
    init.add_argument("--cert-port", type=int, help=f"default {prov.DEFAULT_CERT_PORT}")
    init.add_argument("--bind", default="0.0.0.0", help="address of the LAN listeners")
    init.add_argument("--agent-password-file", type=Path, default=DEFAULT_AGENT_PASSWORD_FILE)
    init.add_argument(
        "--household-password-file", type=Path, default=DEFAULT_HOUSEHOLD_PASSWORD_FILE
    )
    init.set_defaults(func=_init)


def _broker_settings(settings: Settings) -> BrokerSettings:
    return settings.broker


def paths_from(args: argparse.Namespace, settings: Settings) -> prov.BrokerPaths:
    """Settings ``[broker]`` values, overridden by command-line flags."""
    paths = prov.BrokerPaths(agent_user=settings.mqtt.username)
    section = _broker_settings(settings)
    if section is not None:
        for key in (
            "password_file",
            "acl_file",
            "registry_file",
            "ca_dir",
            "pid_file",
            "reload_command",
            "household_user",
        ):
            value = getattr(section, key, None)
            if value is not None:
                paths = replace(paths, **{key: value})
    for key in ("password_file", "acl_file", "registry_file", "ca_dir", "pid_file"):
        value = getattr(args, key)
        if value is not None:
            paths = replace(paths, **{key: value})
    if args.reload_command:
        paths = replace(paths, reload_command=args.reload_command)
    return paths


def _endpoint(settings: Settings, paths: prov.BrokerPaths) -> tuple[str, int, int]:
    """(host devices should connect to, TLS port, mutual-TLS port).

    The ``[broker]`` settings win; then what ``device init`` recorded in the registry
    (so ``init --hostname gw --tls-port 18883`` is what ``add`` tells devices); then
    this machine's host name and the default ports.
    """
    section = _broker_settings(settings)
    recorded = prov.load_registry(paths.registry_file).endpoint
    host = (getattr(section, "advertise_host", None)
            or (recorded.host if recorded else None) or socket.gethostname())
    tls_port = (getattr(section, "tls_port", None)
                or (recorded.tls_port if recorded else None) or prov.DEFAULT_TLS_PORT)
    cert_port = (getattr(section, "cert_port", None)
                 or (recorded.cert_port if recorded else None) or prov.DEFAULT_CERT_PORT)
    return str(host), int(tls_port), int(cert_port)


def _reloader(args: argparse.Namespace, paths: prov.BrokerPaths) -> Callable[[], None] | None:
    """The broker reload, run last inside the provisioning transaction (None: --no-reload)."""
    if args.no_reload:
        return None

    def reload() -> None:
        try:
            prov.reload_broker(paths.pid_file, paths.reload_command)
        except BrokerError as err:
            raise BrokerError(f"{err}; every file was put back as it was: fix the reload "
                              "(or give --no-reload) and run the command again") from err

    return reload


def _add(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    paths = paths_from(args, settings)
    creds = prov.add_device(
        paths, args.device_id, args.kind, now=datetime.now(UTC), use_cert=args.cert,
        apply=_reloader(args, paths),
    )
    host, tls_port, cert_port = _endpoint(settings, paths)
    dev = args.device_id
    info: JsonObject = {
        "device_id": dev,
        "kind": args.kind,
        "host": host,
        "port": cert_port if args.cert else tls_port,
        "tls": True,
        "ca_file": str(paths.ca_file),
        "username": dev,
        "client_id": dev,
        "publish": [device_topic(dev, c) for c in (Channel.STATE, Channel.STATUS, Channel.EVENTS)],
        "subscribe": [device_topic(dev, Channel.COMMANDS)],
    }
    if creds.password is not None:
        info["password"] = creds.password
    else:
        info["cert_file"] = str(creds.cert_file)
        info["key_file"] = str(creds.key_file)
        del info["username"]  # the certificate's CN is the username
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"Device {dev} ({args.kind}) added. Put this into the device:")
    for key, value in info.items():
        if key in ("device_id", "kind"):
            continue
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"  {key + ':':<11} {shown}")
    if creds.password is not None:
        print("The password is shown only now; `device remove` + `device add` makes a new one.")
    else:
        print("Copy the key into the device, then delete it from the gateway.")
    return 0


def _remove(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    paths = paths_from(args, settings_loader())
    record = prov.remove_device(paths, args.device_id, apply=_reloader(args, paths))
    if args.json:
        print(json.dumps({"removed": asdict(record)}))
    else:
        print(f"Device {record.device_id} removed; it can no longer connect.")
    return 0


def _list(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    devices = prov.list_devices(paths_from(args, settings_loader()))
    if args.json:
        print(json.dumps({"devices": [asdict(d) for d in devices]}, indent=2))
        return 0
    print(f"{'DEVICE':<24} {'KIND':<9} {'AUTH':<9} ADDED")
    for d in devices:
        print(f"{d.device_id:<24} {d.kind:<9} {d.auth:<9} {d.added or '-'}")
    if not devices:
        print("(no devices)")
    return 0


def _init(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    paths = paths_from(args, settings)
    _, tls_port, cert_port = _endpoint(settings, paths)
    tls_port = args.tls_port or tls_port
    cert_port = args.cert_port or cert_port
    section = _broker_settings(settings)
    advertise = getattr(section, "advertise_host", None) or args.hostname
    made: list[str] = []
    # All or nothing: a failure (missing template, openssl error) leaves no CA, config or
    # account behind, so running init again starts from the same clean state.
    with FileTransaction() as tx:
        tx.track_tree(paths.ca_dir)
        tx.track(args.conf_file, paths.acl_file, paths.password_file, paths.registry_file,
                 args.agent_password_file, args.household_password_file)
        if not paths.ca_file.is_file():
            prov.run_script("make-ca.sh", str(paths.ca_dir))
        if not (paths.ca_dir / "broker.crt").is_file():
            tx.track(paths.ca_dir / "broker.crt", paths.ca_dir / "broker.key")
            prov.run_script("make-broker-cert.sh", str(paths.ca_dir), args.hostname, *args.ip)
        tls = prov.TlsFiles(
            ca_file=paths.ca_file,
            cert_file=paths.ca_dir / "broker.crt",
            key_file=paths.ca_dir / "broker.key",
            port=tls_port,
            bind=args.bind,
            cert_port=cert_port,
            crl_file=paths.ca_dir / "crl.pem",
        )
        conf = prov.render_mosquitto_conf(
            local_port=args.local_port,
            password_file=paths.password_file,
            acl_file=paths.acl_file,
            tls=tls,
        )
        prov.write_private_file(args.conf_file, conf, mode=0o644)
        registry = prov.load_registry(paths.registry_file)
        registry.endpoint = prov.Endpoint(advertise, tls_port, cert_port)
        prov.save_registry(paths.registry_file, registry)
        prov.ensure_acl(paths)
        existing = prov.read_password_file(paths.password_file)
        for user, secret_file in (
            (paths.agent_user, args.agent_password_file),
            (paths.household_user, args.household_password_file),
        ):
            if user in existing:
                continue
            password = prov.new_password()
            prov.write_private_file(
                secret_file, password + "\n", mode=0o600, broker_readable=False
            )
            prov.set_password(paths, user, password)
            made.append(f"{user} (password in {secret_file})")
    if args.json:
        print(json.dumps({"conf_file": str(args.conf_file), "accounts": made,
                          "endpoint": {"host": advertise, "tls_port": tls_port,
                                       "cert_port": cert_port}}))
        return 0
    print(f"Broker config written to {args.conf_file}; household CA in {paths.ca_dir}.")
    print(f"  devices connect to {advertise}:{tls_port} (TLS), {advertise}:{cert_port} "
          "(client certificates)")
    for line in made:
        print(f"  account {line}")
    print("Listeners changed: run `systemctl restart mosquitto` once.")
    return 0
