"""The commands about the running node itself: ``status``, ``peers`` (and ``block``/``unblock``),
``sessions`` (and ``release``), ``recover``. Thin clients of the node's API (``docs/api.md``)."""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

from cli.client import ApiClient, ApiError, NodeNotRunning
from cli.datadir import CommandError
from cli.output import EXIT_OK, note, print_json
from cli.passphrases import source_of
from cli.render import table
from cli.session import initialised_data_dir, label
from conode.atomicfile import write_atomically
from conode.hashes import AgentKey
from conode.keyfile import KEY_FILE_SUFFIX, check_agent_name, load_key, read_key_info
from conode.passphrase import PassphraseSource

__all__ = ["block", "peers", "recover", "release", "sessions", "status", "unblock"]


# -- status and peers ----------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    data = initialised_data_dir(args)
    status = ApiClient(data).call("status")
    if args.json:
        print_json(status)
        return EXIT_OK
    agents = ", ".join(a["name"] for a in status.get("agents", [])) or "none"
    rows = [
        ("node", status.get("peer_id", "?")),
        ("network", status.get("network", "?")),
        ("advertises", " ".join(status.get("listen", [])) or "-"),  # where peers dial it
        ("peers", status.get("peers", 0)),
        ("agents", agents),
        ("chains", status.get("chains", 0)),
        ("ring", _ring_line(status.get("ring"))),
        ("pending", status.get("pending", 0)),
        ("publishing", status.get("publishing", 0)),
        (
            "sessions",
            f"{status.get('sessions', 0)} open, {status.get('locked_chains', 0)} chains held",
        ),
        ("warrants", status.get("warrants", 0)),
        ("heads", str(status.get("heads_digest", ""))[:16]),
        (
            "apps",
            ", ".join(
                a["id"] if a["running"] else f"{a['id']} (not running: {a['reason']})"
                for a in status.get("apps", [])
            )
            or "none",
        ),
    ]
    for key, value in rows:
        print(f"{key:<11}{value}")
    for warning in status.get("clock_warnings") or []:
        offset = warning["offset_s"]
        side = "ahead of" if offset > 0 else "behind"
        print(
            f"warning: the clock of peer {warning['peer_id']} is {abs(offset):.0f} s {side} this "
            "node's: set up NTP on both (payments fail past the network's clock tolerance)"
        )
    return EXIT_OK


def _ring_line(ring: Any) -> str:
    """Where the node stands on the location ring and how much of it it holds."""
    if not isinstance(ring, dict):
        return "-"  # a node of an earlier version
    if ring["full_arc"]:
        return "full arc: holds every chain"
    if not ring["placed"]:
        return "not placed yet: holds its own agents' chains only"
    return (
        f"placed at {ring['location']}, holds {100 * ring['fraction']:.1f} % of the ring "
        f"({ring['holders_known']} holders known)"
    )


def peers(args: argparse.Namespace) -> int:
    data = initialised_data_dir(args)
    peers = ApiClient(data).call("peers")
    if args.json:
        print_json(peers)
    elif not peers:
        print("no peers connected")
    else:
        print(
            table(
                ("PEER", "AGENTS", "ADDRESS"),
                [
                    (
                        p["peer_id"],
                        ", ".join(p.get("agents") or []) or "-",
                        (p.get("addrs") or ["-"])[0],
                    )
                    for p in peers
                ],
            )
        )
    return EXIT_OK


def sessions(args: argparse.Namespace) -> int:
    data = initialised_data_dir(args)
    rows = ApiClient(data).call("sessions")["sessions"]
    if args.json:
        print_json(rows)
    elif not rows:
        print("no session is open and no chain is held")
    else:
        print(
            table(
                ("ID", "ROLE", "PHASE", "AGENT", "HOLDS CHAIN", "NOTE"),
                [
                    (
                        row["id"][:16],
                        row["role"] or "-",
                        row["phase"],
                        row["agent"][:16] + "…",
                        "yes" if row["holds_chain"] else "no",
                        _session_note(row),
                    )
                    for row in rows
                ],
            )
        )
    return EXIT_OK


def _session_note(row: dict[str, Any]) -> str:
    if row.get("owes_write"):
        return f"retrying its {row['owes_write']} write (is the disk full?)"
    if row.get("payer_committed"):
        return "the payer committed: waiting for its witnesses"
    if row["phase"] == "signed":
        return "waiting for the payer's decision"
    return ""


def release(args: argparse.Namespace) -> int:
    data = initialised_data_dir(args)
    said = ApiClient(data).call("sessions.release", {"id": args.id, "force": args.force})
    if args.json:
        print_json(said)
    else:
        print(said["released"])
    return EXIT_OK


def _blocked_out(args: argparse.Namespace, result: dict[str, Any]) -> int:
    if args.json:
        print_json(result)
    elif result["blocked"]:
        print("blocked: " + " ".join(result["blocked"]))
    else:
        print("no peer is blocked")
    return EXIT_OK


def block(args: argparse.Namespace) -> int:
    data = initialised_data_dir(args)
    return _blocked_out(args, ApiClient(data).call("block", {"peers": args.peer_ids}))


def unblock(args: argparse.Namespace) -> int:
    if args.all == bool(args.peer_ids):
        args.parser.error("peers unblock takes PEER_ID... or --all")
    data = initialised_data_dir(args)
    params: dict[str, Any] = {"all": True} if args.all else {"peers": args.peer_ids}
    return _blocked_out(args, ApiClient(data).call("unblock", params))


# -- recover ----------------------------------------------------------------------------------------------


def recover(args: argparse.Namespace) -> int:
    data = initialised_data_dir(args)
    info = read_key_info(args.key)
    check_agent_name(info.name)
    if not info.encrypted:
        load_key(args.key)  # checks the file's mode and that it holds the agent it names
    dest = data.keys_dir / f"{info.name}{KEY_FILE_SUFFIX}"
    copied = _install_key(args.key, dest, info.agent)
    client = ApiClient(data)
    # a passphrase from recover's own options goes with the request; else the node's sources
    given = source_of(args).find(info.name) if info.encrypted else None
    try:
        try:
            result = client.call("recover", _recover_params(dest, given))
        except ApiError as exc:
            asked = str(exc).startswith("no passphrase for agent")
            if given is not None or not asked or not sys.stdin.isatty():
                raise  # the node's error names the places it looked in
            given = PassphraseSource(environ={}).passphrase(info.name)  # ask on the terminal
            result = client.call("recover", _recover_params(dest, given))
    except NodeNotRunning as exc:
        where = f"copied the key to {dest}, but " if copied else ""
        raise CommandError(
            f"{where}no node is running for {data.root}: start it with `conode run`, "
            f"then run `conode recover --key {args.key}` again"
        ) from exc
    if args.json:
        print_json({**result, "key_file": str(dest), "copied": copied})
    else:
        print(
            f"recovered {label(result.get('name'), result['agent'])}: this node hosts it again "
            f"({result['records']} records of its chain fetched from peers)"
        )
    if given is not None:
        note(
            f"at its next start the node needs {info.name}'s passphrase from its own sources "
            f"(its passphrase dir, a systemd credential passphrase_{info.name}, or --passphrase-file)"
        )
    return EXIT_OK


def _recover_params(key_file: Path, passphrase: bytes | None) -> dict[str, str]:
    params = {"key_file": str(key_file)}
    if passphrase is not None:
        params["passphrase_b64"] = base64.b64encode(passphrase).decode("ascii")
    return params


def _install_key(source: Path, dest: Path, agent: AgentKey) -> bool:
    """Copy a key file into keys/ (mode 0600); False if the same agent's key is already there."""
    if dest.exists():
        held = read_key_info(dest)
        if held.agent != agent:
            raise CommandError(
                f"{dest} holds another agent's key ({held.agent.short()}…); "
                "it is never overwritten: rename one of them"
            )
        return False
    payload = source.read_bytes()
    try:
        write_atomically(dest, payload, mode=0o600, replace=False)
    except FileExistsError as exc:
        raise CommandError(f"{dest} appeared while copying; try again") from exc
    except OSError as exc:
        raise CommandError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    return True
