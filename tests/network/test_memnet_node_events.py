"""What a node tells its listeners and readers about its hosted agents' payments (the web page's
live updates and history read these; real nodes on the in-memory network)."""

from __future__ import annotations

from pathlib import Path

from netkit import wait_until

from conode.chain import Record
from conode.testing.network import TestNetwork
from conode.validation.entries import PAYMENT


async def test_a_payment_committed_by_a_session_reaches_on_stored_on_both_nodes(
    tmp_path: Path,
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        payer, payee = net.agents["coop0-m0"], net.agents["coop1-m0"]
        seen: dict[str, list[Record]] = {"payer": [], "payee": []}
        net.home["coop0-m0"].on_stored.append(seen["payer"].append)
        net.home["coop1-m0"].on_stored.append(seen["payee"].append)
        result = await net.pay("coop0-m0", "coop1-m0", 25, memo="bread")
        assert result.committed, result.reason

        def told(side: str, agent: object) -> bool:
            return any(
                r.action.entry_type == PAYMENT and r.action.author == agent for r in seen[side]
            )

        assert told("payer", payer)  # the payer's node committed it: it told at once
        await wait_until(lambda: told("payee", payee), timeout=10.0)


async def test_history_from_a_seq_reads_only_the_payments_at_or_after_it(tmp_path: Path) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        for amount in (1, 2, 3):
            assert (await net.pay("coop0-m0", "coop1-m0", amount)).committed
        node, agent = net.home["coop0-m0"], net.agents["coop0-m0"]
        everything = node.history(agent)
        assert [row["amount"] for row in everything] == [-1, -2, -3]
        later = node.history(agent, from_seq=everything[1]["seq"])
        assert later == everything[1:]
        head = node.store.head(agent)
        assert head is not None
        assert node.history(agent, from_seq=head.seq + 1) == []


async def test_the_directory_names_every_held_agent_with_its_coop_and_where_it_is_hosted(
    tmp_path: Path,
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        node = net.home["coop0-m0"]
        await wait_until(lambda: len(node.directory()) >= 4, timeout=10.0)
        rows = {row["name"]: row for row in node.directory()}
        coop0, coop1 = node.name_of(net.agents["coop0"]), node.name_of(net.agents["coop1"])
        assert rows["coop0-m0"]["coop_name"] == coop0 and rows["coop0-m0"]["hosted"]
        assert rows["coop1-m0"]["coop_name"] == coop1 and not rows["coop1-m0"]["hosted"]
        assert rows[coop0]["coop_name"] is None and rows[coop0]["role"] == "coop"
        assert rows[coop0]["key"] == net.agents["coop0"]
        names = [row["name"] for row in node.directory()]
        assert names == sorted(names, key=str.casefold)
