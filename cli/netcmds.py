"""The commands that set up a node in a network: charter, init, agents, co-op and member geneses, run.

Geneses are committed offline (``conode.offline.commit_offline``) while the
node is stopped; ``conode run`` then hosts every local agent that has a
chain. See "Joining a network" in ``docs/user-guide.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import multiaddr
import multiaddr.exceptions

from cli import network, ops
from cli.charterfile import (
    charter_from_toml,
    charter_json,
    charter_lines,
    prompt_charter,
    read_toml,
)
from cli.client import node_running
from cli.datadir import (
    CommandError,
    DataDir,
    decode_charter,
    default_data_dir,
    read_charter,
    write_bytes_atomically,
)
from cli.dirlock import DataDirLock
from cli.money import decimal_arg, whole_arg
from cli.output import EXIT_FAILED, EXIT_OK, note, print_json, warn
from cli.passphrases import (
    add_passphrase_dir,
    add_passphrase_file,
    add_passphrase_options,
    source_of,
)
from cli.runner import LOG_LEVELS, plan_run, run_node, web_settings
from conode.crypto import Signer
from conode.dht.addresses import announce_error, is_wildcard
from conode.errors import EncodingError
from conode.hashes import AgentKey
from conode.keyfile import check_agent_name, key_path, save_key
from conode.passphrase import check_new_passphrase
from conode.validation.charter import Charter

__all__ = ["add_agent_commands", "add_commands", "add_init", "data_dir", "genesis_out", "stopped"]

Handler = Callable[[argparse.Namespace], int]
Command = Callable[[Any, str, Handler, str], argparse.ArgumentParser]
JsonFlag = Callable[[argparse.ArgumentParser], None]


def add_init(commands: Any, command: Command, json_flag: JsonFlag) -> None:
    """``conode init``."""
    init = command(commands, "init", _init, "create the data dir, config, node key and store")
    init.add_argument("--charter", type=Path, metavar="F", help="the network's charter file")
    init.add_argument("--listen", metavar="MULTIADDR", help="where the node listens")
    init.add_argument(
        "--bootstrap",
        nargs="+",
        metavar="MULTIADDR",
        help="peers to join through (…/p2p/<peer id>); replaces the config's list",
    )
    init.add_argument(
        "--announce",
        nargs="+",
        metavar="MULTIADDR",
        help="advertise these instead of the interfaces' addresses "
        "(a public address or port forward, /ip4/IP/tcp/PORT); replaces the config's list",
    )
    json_flag(init)


def add_agent_commands(agents: Any, command: Command, json_flag: JsonFlag) -> None:
    """``conode agent new`` and ``conode agent join``."""
    new = command(agents, "new", _agent_new, "create an agent's key (its genesis comes later)")
    new.add_argument("name", metavar="NAME", help="a local name (letters, digits, . _ -)")
    secret = new.add_mutually_exclusive_group()
    secret.add_argument(
        "--no-passphrase", action="store_true", help="store the key UNENCRYPTED (not advised)"
    )
    add_passphrase_file(secret)
    add_passphrase_dir(new)
    new.add_argument(
        "--standalone",
        action="store_true",
        help="also commit a standalone genesis outside any network (for the chain tools)",
    )
    json_flag(new)

    join = command(agents, "join", _agent_join, "commit a member's genesis with its credential")
    join.add_argument("name", metavar="NAME", help="the local agent (made with `agent new`)")
    join.add_argument(
        "--credential", type=Path, required=True, metavar="F", help="the co-op's credential file"
    )
    add_passphrase_options(join)
    json_flag(join)


def add_commands(commands: Any, command: Command, json_flag: JsonFlag) -> None:
    """``charter``, ``network``, ``coop``, ``member``, ``run`` and ``devnet``."""
    charter = commands.add_parser("charter", help="a network's founding rule-set")
    charters = charter.add_subparsers(dest="charter_command", metavar="COMMAND", required=True)
    new = command(charters, "new", _charter_new, "write a charter from a TOML file (or prompts)")
    new.add_argument("--from", dest="source", type=Path, metavar="FILE.toml", help="the TOML")
    new.add_argument(
        "--out", type=Path, default=Path("charter.cbor"), metavar="F", help="default charter.cbor"
    )
    json_flag(new)
    show = command(charters, "show", _charter_show, "show a charter (default: the data dir's)")
    show.add_argument("file", nargs="?", type=Path, metavar="F", help="a charter file")
    json_flag(show)
    verify = command(charters, "verify", _charter_verify, "check a charter file; its network id")
    verify.add_argument("file", type=Path, metavar="F", help="a charter file")
    json_flag(verify)

    net = commands.add_parser("network", help="this node's network")
    nets = net.add_subparsers(dest="network_command", metavar="COMMAND", required=True)
    json_flag(
        command(nets, "show", _network_show, "network id, listen, announce and bootstrap addresses")
    )

    coop = commands.add_parser("coop", help="co-ops")
    coops = coop.add_subparsers(dest="coop_command", metavar="COMMAND", required=True)
    genesis = command(
        coops,
        "genesis",
        _coop_genesis,
        "commit a co-op's genesis (founding, or admitted by a vote)",
    )
    genesis.add_argument("name", metavar="NAME", help="the co-op's local agent name or key")
    add_passphrase_options(genesis)
    json_flag(genesis)

    member = commands.add_parser("member", help="a co-op's members")
    members = member.add_subparsers(dest="member_command", metavar="COMMAND", required=True)
    add = command(members, "add", _member_add, "a new member hosted on this (the co-op's) node")
    add.add_argument("name", metavar="NAME", help="the member's local name")
    add.add_argument("--coop", required=True, metavar="COOP", help="the co-op admitting it")
    add.add_argument("--display-name", metavar="TEXT", help="the member's full name (default NAME)")
    secret = add.add_mutually_exclusive_group()
    secret.add_argument(
        "--no-passphrase", action="store_true", help="store the key UNENCRYPTED (not advised)"
    )
    add_passphrase_file(secret)
    add.add_argument(
        "--coop-passphrase-file", type=Path, metavar="F", help="the co-op key's passphrase"
    )
    add_passphrase_dir(add)
    json_flag(add)
    cred = command(
        members, "credential", _member_credential, "a credential for a member with its own node"
    )
    cred.add_argument("agent", metavar="AGENT_KEY", help="the member's agt_… key")
    cred.add_argument("--name", required=True, metavar="NAME", help="the member's name")
    cred.add_argument("--coop", required=True, metavar="COOP", help="the co-op admitting it")
    cred.add_argument("--out", type=Path, required=True, metavar="F", help="the file to write")
    add_passphrase_options(cred)
    json_flag(cred)

    run = command(commands, "run", _run, "run the node until Ctrl-C or SIGTERM")
    run.add_argument("--listen", metavar="MULTIADDR", help="override the config's listen address")
    run.add_argument(
        "--bootstrap", nargs="+", metavar="MULTIADDR", help="override the config's bootstrap peers"
    )
    run.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="default info")
    run.add_argument(
        "--mdns", action="store_true", help="find other nodes on the local network by mDNS"
    )
    run.add_argument(
        "--memory-mb", type=whole_arg(1), metavar="MB",
        help="the node's memory budget (overrides the config's memory_mb)",
    )  # fmt: skip
    run.add_argument("--no-web", action="store_true", help="do not serve the members' web page")
    run.add_argument(
        "--behind-proxy",
        action="store_true",
        help="the web page is reached through a TLS reverse proxy (see docs/operator.md)",
    )
    run.add_argument(
        "--full-arc",
        action="store_true",
        help="hold every chain (an auditor's node), not only this node's share",
    )
    add_passphrase_file(run, "one passphrase for every key: read it from F")
    add_passphrase_dir(run)

    devnet = command(
        commands, "devnet", _devnet, "a local test network of real nodes: pay, converge, audit"
    )
    devnet.add_argument("--nodes", type=whole_arg(2), default=3, metavar="N", help="default 3")
    devnet.add_argument("--payments", type=whole_arg(0), default=30, metavar="K", help="default 30")
    devnet.add_argument("--seed", metavar="S", help="the same seed, the same keys and payments")
    devnet.add_argument("--dir", type=Path, metavar="DIR", help="work in DIR (new or empty); kept")
    devnet.add_argument(
        "--keep-running", action="store_true", help="leave the nodes running until Ctrl-C"
    )
    devnet.add_argument(
        "--scenario",
        choices=("payments", "full"),
        default="payments",
        help="full: also offers and wants, grants and a monthly re-estimate, a Foundation vote "
        "and disbursement, an amendment, a lookout thread (several minutes)",
    )
    devnet.add_argument(
        "--timeout", type=_seconds, default=120.0, metavar="S", help=argparse.SUPPRESS
    )
    json_flag(devnet)


def _seconds(text: str) -> float:
    return float(decimal_arg(text))


def data_dir(args: argparse.Namespace) -> DataDir:
    chosen: Path | None = getattr(args, "data_dir", None)
    return DataDir(chosen if chosen is not None else default_data_dir())


def stopped(data: DataDir, purpose: str) -> DataDirLock:
    """Refuse to write the store behind a running node's back; hold the dir's lock meanwhile."""
    if node_running(data):
        raise CommandError(
            f"the node for {data.root} is running: stop it first "
            "(this command writes to its store offline)"
        )
    return data.lock(purpose)


def check_announce(text: str) -> str:
    """``text`` if a node can advertise it (``conode.dht.addresses.announce_error``)."""
    addr = check_multiaddr(text, peer=False)
    error = announce_error(addr)
    if error is not None:
        raise CommandError(f"cannot announce {error}")
    return addr


def check_multiaddr(text: str, *, peer: bool) -> str:
    """``text`` if it is a multiaddr (ending in /p2p/<peer id> when ``peer``)."""
    try:
        addr = multiaddr.Multiaddr(text)
    except (ValueError, TypeError, multiaddr.exceptions.Error) as exc:
        raise CommandError(f"{text!r} is not a multiaddr (like /ip4/192.0.2.7/tcp/7447)") from exc
    if peer and "/p2p/" not in str(addr):
        raise CommandError(f"{text!r} must end in /p2p/<peer id> (see `conode network show`)")
    return str(addr)


# -- charter ---------------------------------------------------------------------------------------


def _charter_new(args: argparse.Namespace) -> int:
    resolve = _founder_resolver(args)
    if args.source is not None:
        values = read_toml(args.source)
    elif sys.stdin.isatty():
        values = prompt_charter(_ask, lambda line: print(line, file=sys.stderr))
    else:
        raise CommandError("no charter given: use --from FILE.toml (or run in a terminal)")
    charter = charter_from_toml(values, resolve, ops.now_us())
    data = charter.to_bytes()
    out: Path = args.out
    if out.exists():
        try:
            same = out.read_bytes() == data
        except OSError:
            same = False
        if not same:
            raise CommandError(f"{out} already exists: choose another --out or remove it")
    else:
        write_bytes_atomically(out, data)
    if args.json:
        print_json({**charter_json(charter), "file": str(out)})
    else:
        note(f"wrote the charter of {charter.name} to {out}")
        print(charter.network_id)
    return EXIT_OK


def _ask(question: str, default: str) -> str:
    shown = f" [{default}]" if default else ""
    sys.stderr.write(f"{question}{shown}: ")  # stdout stays for the network id
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise CommandError("the charter questions were not answered")
    return line.strip() or default


def _founder_resolver(args: argparse.Namespace) -> Callable[[str], AgentKey]:
    """Founding co-ops named by ``agt_…`` key, or by a local agent's name in the data dir."""
    data = data_dir(args)

    def resolve(text: str) -> AgentKey:
        if text.lower().startswith("agt_"):
            return AgentKey.parse(text)
        check_agent_name(text)
        if not data.exists():
            raise CommandError(
                f"{text!r} is not an agt_… key, and there is no data dir at {data.root} "
                "to find a local agent of that name in"
            )
        return ops.resolve_agent(data, text).agent

    return resolve


def _charter_show(args: argparse.Namespace) -> int:
    charter = read_charter(args.file) if args.file is not None else data_dir(args).charter()
    if args.json:
        print_json(charter_json(charter))
    else:
        print("\n".join(charter_lines(charter)))
    return EXIT_OK


def _charter_verify(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    try:
        charter = decode_charter(data, str(args.file))
    except CommandError as exc:
        if args.json:
            print_json({"valid": False, "file": str(args.file), "reason": str(exc)})
            return EXIT_FAILED
        raise
    if args.json:
        print_json({"valid": True, "file": str(args.file), "network": str(charter.network_id)})
    else:
        print(f"valid: {args.file}: {charter.name}, network {charter.network_id}")
    return EXIT_OK


# -- init and the network ------------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    from dataclasses import replace

    data = data_dir(args)
    charter_bytes: bytes | None = None
    if args.charter is not None:
        charter_bytes = read_charter(args.charter).to_bytes()
    listen = None if args.listen is None else check_multiaddr(args.listen, peer=False)
    bootstrap = (
        None
        if args.bootstrap is None
        else tuple(check_multiaddr(a, peer=True) for a in args.bootstrap)
    )
    announce = None if args.announce is None else tuple(check_announce(a) for a in args.announce)
    created = data.init()
    config = data.config()
    changed = replace(
        config,
        listen=config.listen if listen is None else listen,
        bootstrap=config.bootstrap if bootstrap is None else bootstrap,
        announce=config.announce if announce is None else announce,
    )
    if changed != config:
        data.write_config(changed)
    charter_added = False
    if charter_bytes is not None:
        charter_added = data.install_charter(charter_bytes)
    warning = data.keys_dir_warning()
    if warning:
        warn(warning)
    summary = _network_summary(data)
    if args.json:
        print_json({"data_dir": str(data.root), "created": created, **summary})
        return EXIT_OK
    if created:
        print(f"created the conode data dir {data.root}")
    elif charter_added or changed != config:
        print(f"updated the conode data dir {data.root}")
    else:
        print(f"the conode data dir {data.root} already exists (nothing changed)")
    if summary["network"] is not None:
        print(f"network {summary['network']} ({summary['name']})")
    print(f"node    {summary['peer_id']}")
    return EXIT_OK


def _network_summary(data: DataDir) -> dict[str, Any]:
    config = data.config()
    charter: Charter | None = data.charter() if data.has_charter() else None
    peer_id = network.peer_id_of(data.node_seed())
    shareable = None
    if config.announce:
        shareable = f"{config.announce[0]}/p2p/{peer_id}"
    elif not is_wildcard(config.listen) and not config.listen.endswith("/0"):
        shareable = f"{config.listen}/p2p/{peer_id}"
    return {
        "network": None if charter is None else str(charter.network_id),
        "name": None if charter is None else charter.name,
        "peer_id": peer_id,
        "listen": config.listen,
        "announce": list(config.announce),
        "bootstrap": list(config.bootstrap),
        "address": shareable,
    }


def _network_show(args: argparse.Namespace) -> int:
    data = data_dir(args)
    summary = _network_summary(data)
    running = []
    if data.ready_path.is_file() and node_running(data):
        running = [line for line in data.ready_path.read_text().splitlines() if line.strip()]
    summary["running_addrs"] = running
    if args.json:
        print_json(summary)
        return EXIT_OK
    network_text = (
        "none (run `conode init --charter F`)"
        if summary["network"] is None
        else f"{summary['network']} ({summary['name']})"
    )
    print(f"network    {network_text}")
    print(f"node       {summary['peer_id']}")
    print(f"listen     {summary['listen']}")
    announce = " ".join(summary["announce"]) or "none (the interfaces' addresses)"
    print(f"announce   {announce}")
    print(f"bootstrap  {' '.join(summary['bootstrap']) or 'none'}")
    if running:
        print(f"advertises {' '.join(running)}")
    elif summary["address"]:
        print(f"address    {summary['address']}  (give this to nodes that join through this one)")
    return EXIT_OK


# -- agents, co-ops, members -----------------------------------------------------------------------------


def _new_passphrase(args: argparse.Namespace, name: str) -> bytes | None:
    if args.no_passphrase:
        return None
    return check_new_passphrase(source_of(args).passphrase(name, confirm=True))


def _agent_new(args: argparse.Namespace) -> int:
    data = data_dir(args)
    name = check_agent_name(args.name)
    path = key_path(data.keys_dir, name)
    if path.exists():
        raise CommandError(f"agent {name!r} already exists ({path})")
    genesis = None
    if args.standalone:
        if data.has_charter():
            raise CommandError(
                "this data dir belongs to a network: a standalone genesis has no place here "
                "(use `conode coop genesis` or `conode agent join`)"
            )
        with data.open_store() as store:
            info, record = ops.create_agent(
                data, store, name, _new_passphrase(args, name), timestamp=ops.now_us()
            )
        genesis = str(record.hash)
    else:
        data.config()
        passphrase = _new_passphrase(args, name)
        info = save_key(path, Signer.generate(), name, passphrase)
    if not info.encrypted:
        warn(f"the key of agent {name} is stored UNENCRYPTED in {path}")
    if args.json:
        print_json(
            {
                "name": name,
                "agent": str(info.agent),
                "encrypted": info.encrypted,
                "key_file": str(path),
                "genesis": genesis,
            }
        )
    else:
        note(f"created agent {name}; key file {path}")
        if genesis is None:
            note(
                "its chain starts with its genesis: `conode coop genesis` (a founding co-op) "
                "or `conode agent join --credential F` (a member)"
            )
        print(info.agent)
    return EXIT_OK


def genesis_out(
    args: argparse.Namespace, what: str, name: str, agent: AgentKey, record: Any
) -> int:
    if args.json:
        print_json({"name": name, "agent": str(agent), "genesis": str(record.hash)})
    else:
        print(f"committed the genesis of {what} {name} ({agent}): {record.hash}")
    return EXIT_OK


def _coop_genesis(args: argparse.Namespace) -> int:
    data = data_dir(args)
    charter = data.charter()
    ref = network.member_ref(data, args.name)
    with stopped(data, "conode coop genesis"), data.open_node_store() as store:
        record = network.coop_genesis(data, store, charter, ref, source_of(args))
    return genesis_out(args, "co-op", ref.name or args.name, ref.agent, record)


def _member_add(args: argparse.Namespace) -> int:
    data = data_dir(args)
    charter = data.charter()
    name = check_agent_name(args.name)
    if key_path(data.keys_dir, name).exists():
        raise CommandError(f"agent {name!r} already exists ({key_path(data.keys_dir, name)})")
    coop = network.member_ref(data, args.coop)
    lock = stopped(data, "conode member add")
    passphrase = _new_passphrase(args, name)
    with lock, data.open_node_store() as store:
        info, record = network.add_member(
            data,
            store,
            charter,
            name,
            coop,
            display_name=args.display_name,
            coop_source=source_of(args, file_option="coop_passphrase_file"),
            passphrase=passphrase,
        )
    if not info.encrypted:
        warn(f"the key of agent {name} is stored UNENCRYPTED in {key_path(data.keys_dir, name)}")
    if args.json:
        print_json(
            {
                "name": name,
                "agent": str(info.agent),
                "coop": str(coop.agent),
                "encrypted": info.encrypted,
                "key_file": str(key_path(data.keys_dir, name)),
                "genesis": str(record.hash),
            }
        )
    else:
        note(
            f"{coop.name} admitted {args.display_name or name}; "
            "the node hosts it from its next start (`conode run`)"
        )
        print(info.agent)
    return EXIT_OK


def _member_credential(args: argparse.Namespace) -> int:
    data = data_dir(args)
    charter = data.charter()
    try:
        member = AgentKey.parse(args.agent)
    except EncodingError as exc:
        raise CommandError(f"AGENT_KEY: {exc}") from exc
    coop = network.member_ref(data, args.coop)
    if args.out.exists():
        raise CommandError(f"{args.out} already exists")
    with data.open_node_store() as store:
        credential = network.issue_credential(
            data,
            store,
            charter,
            coop,
            member,
            args.name,
            source_of(args),
        )
    file = network.CredentialFile(charter.network_id, credential)
    network.write_credential(args.out, file)
    if args.json:
        print_json({**file.to_json(), "file": str(args.out)})
    else:
        print(
            f"wrote {args.out}: {coop.name} vouches for {credential.name} ({member.short()}…); "
            "give it to the member for `conode agent join`"
        )
    return EXIT_OK


def _agent_join(args: argparse.Namespace) -> int:
    data = data_dir(args)
    charter = data.charter()
    ref = network.member_ref(data, args.name)
    credential = network.read_credential(args.credential)
    with stopped(data, "conode agent join"), data.open_node_store() as store:
        record = network.join_with_credential(
            data, store, charter, ref, credential, source_of(args)
        )
    return genesis_out(args, "member", ref.name or args.name, ref.agent, record)


# -- run and devnet ----------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    data = data_dir(args)
    listen = None if args.listen is None else check_multiaddr(args.listen, peer=False)
    bootstrap: Sequence[str] | None = (
        None if args.bootstrap is None else [check_multiaddr(a, peer=True) for a in args.bootstrap]
    )
    data.config()  # "run `conode init`" comes before the lock, which needs the dir
    with data.lock("conode run"):  # for the node's whole life: one node per data dir
        plan = plan_run(data, listen=listen, bootstrap=bootstrap, passphrases=source_of(args))
        plan.mdns = args.mdns
        plan.memory_mb = args.memory_mb or 0
        plan.web = not args.no_web
        plan.behind_proxy = args.behind_proxy
        web_settings(plan)  # an exposed page without TLS is refused before anything starts
        plan.full_arc = args.full_arc
        if not plan.hosted:
            warn("no local agent has a chain yet: this node hosts nobody, it relays and validates")
        run_node(plan, args.log_level)
    return EXIT_OK


def _devnet(args: argparse.Namespace) -> int:
    from cli.devnet import DevnetOptions, run_devnet

    options = DevnetOptions(
        nodes=args.nodes,
        payments=args.payments,
        seed=args.seed,
        directory=args.dir,
        keep_running=args.keep_running,
        timeout=args.timeout,
        scenario=args.scenario,
    )
    result = run_devnet(options, out=sys.stdout, progress=sys.stderr)
    if args.json:
        print_json(result.as_json())
    return EXIT_OK if result.ok else EXIT_FAILED
