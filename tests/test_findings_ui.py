"""The config view (c), a queue's inspector, and (with findings) the strip and the findings view:
pure builders (tui/config_text.py, tui/findings_text.py) and the screens in a Pilot."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import ui_fixtures as fx

from txtop.core.config import DeviceConfig, IrqInfo, QdiscConfig, QueueConfig
from txtop.core.finding import Subject
from txtop.core.model import Snapshot
from txtop.tui.app import TxtopApp
from txtop.tui.config_text import config_lines, queue_detail
from txtop.tui.config_view import ConfigScreen, QueueScreen
from txtop.tui.panels.format import frag_len, line_text

SYSCTL = {
    "net.core.default_qdisc": "pfifo_fast",
    "net.core.netdev_budget": "300",
    "net.core.netdev_budget_usecs": "8000",
    "net.core.netdev_max_backlog": "1000",
}


def configured(snap: Snapshot | None = None) -> Snapshot:
    """ui_fixtures.busy_lab with the configuration a live collector would attach."""
    snap = snap or fx.busy_lab()
    devices = []
    for d in snap.devices:
        if d.dev == "eth0":
            config = DeviceConfig(
                txqueuelen=1000,
                mtu=1500,
                driver="virtio_net",
                bus_info="0000:00:03.0",
                tx_ring=256,
                tx_ring_max=256,
                rx_ring=256,
                rx_ring_max=256,
                coalesce={"tx_usecs": 0, "tx_frames": 1, "rx_usecs": 0, "rx_frames": 1},
                offloads={"generic-segmentation-offload": True, "large-receive-offload": False},
                irqs=(IrqInfo(39, "virtio2-output.0", "tx", 0, "0-1", "0", 2298),),
                irq_match="by name: 1 TX vector(s) matched to TX queues",
                root_qdisc=QdiscConfig("pfifo_fast", "0:", "root", 1000, "packets"),
                sysctl=SYSCTL,
            )
        else:
            config = DeviceConfig(
                txqueuelen=1000,
                mtu=1500,
                driver="veth" if d.dev != "lo" else None,
                sysctl=SYSCTL,
                unavailable={"rings": "not supported by the driver"},
                irq_match="no interrupts found: a software device",
            )
        devices.append(dataclasses.replace(d, config=config))
    queues = []
    for q in snap.queues:
        qd = q.qdisc
        limit = QdiscConfig(qd.kind, qd.handle, qd.parent, 3000, "bytes") if qd else None
        if q.dev == "eth0":
            qc = QueueConfig(
                xps_rxqs="",
                tx_maxrate=0,
                bql_limit_min=0,
                bql_limit_max=1879048192,
                bql_hold_time=1000,
                irqs=(39,),
                irq_cpus="0",
                qdisc=limit,
                unavailable={"xps_cpus": "single TX queue: XPS is not used"},
            )
        else:
            qc = QueueConfig(xps_cpus=str(q.queue % 2), xps_rxqs="", tx_maxrate=0, qdisc=limit)
        queues.append(dataclasses.replace(q, config=qc))
    return dataclasses.replace(snap, devices=tuple(devices), queues=tuple(queues))


# ---- pure builders ------------------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 120, 200])
def test_config_lines_fit_and_carry_the_rows(width: int) -> None:
    rows = config_lines(configured(), width)
    assert all(frag_len(line) <= width for line, _ in rows)
    text = [line_text(line) for line, _ in rows]
    assert text[0].startswith("net.core") and "netdev_budget 300" in text[0]
    subjects = [s for _, s in rows if s is not None]
    assert Subject("device", "txlp1a") in subjects
    assert [s.queue for s in subjects if s.kind == "queue" and s.dev == "txlp1a"] == [0, 1, 2, 3]
    assert [s.cpu for s in subjects if s.kind == "cpu"] == [0, 1]
    eth0 = next(t for t in text if t.startswith("eth0"))
    assert "virtio_net" in eth0 and "txqueuelen 1000" in eth0
    tx0 = next(line_text(line) for line, s in rows if s == Subject("queue", "txlp1a", 0))
    assert tx0.startswith("tx-0") and "tbf 2.9K" in tx0  # the qdisc and its limit
    assert "310" in tx0  # live drops/s beside it
    assert any("rings tx 256/256" in t for t in text)


def test_config_lines_without_configuration_say_so() -> None:
    rows = config_lines(fx.busy_lab(), 100)
    text = "\n".join(line_text(line) for line, _ in rows)
    assert "configuration not read" in text and "net.core: not read" in text
    assert config_lines(None, 80)[0][1] is None


def test_queue_detail() -> None:
    text = [line_text(line) for line in queue_detail(configured(), Subject("queue", "eth0", 0))]
    joined = "\n".join(text)
    assert "xps_cpus          - (single TX queue: XPS is not used)" in joined
    assert "BQL limit_min/max 0 / 1879048192 bytes, hold_time 1000 ms" in joined
    assert "TX IRQs           39 on CPUs 0" in joined
    assert "BQL in flight" in joined and "Findings" in joined
    missing = queue_detail(configured(), Subject("queue", "nope", 3))
    assert "not in this snapshot" in line_text(missing[0])


# ---- the screens ----------------------------------------------------------------------------


async def _shown(pilot) -> None:
    await fx.until(pilot, lambda: pilot.app.shown is not None, "a snapshot shown")


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
def test_config_view_cursor_inspector_and_updates(size) -> None:
    asyncio.run(_config_view(size))


async def _config_view(size) -> None:
    source = fx.ManualSource(configured())
    app = TxtopApp(source)
    async with app.run_test(size=size) as pilot:
        await _shown(pilot)
        await pilot.press("c")
        await fx.until(pilot, lambda: isinstance(app.screen, ConfigScreen), "the config view")
        screen = app.screen
        assert isinstance(screen, ConfigScreen)
        await fx.until(pilot, lambda: screen.rows.selected is not None, "the rows")
        assert screen.rows.selected == Subject("device", "eth0")
        await pilot.press("down", "down", "down")  # eth0 tx-0, txlp1a, txlp1a tx-0
        assert screen.rows.selected == Subject("queue", "txlp1a", 0)
        await pilot.press("enter")
        await fx.until(pilot, lambda: isinstance(app.screen, QueueScreen), "the inspector")
        rows = app.screen.query_one("#queue-rows")
        assert rows.text()[0].startswith("txlp1a tx-0")
        # A new snapshot reaches the open inspector (live numbers move beside the knobs).
        busier = configured()
        q0 = busier.queues[1]
        q0 = dataclasses.replace(q0, qdisc=dataclasses.replace(q0.qdisc, drops_per_s=777.0))
        busier = dataclasses.replace(busier, queues=(busier.queues[0], q0, *busier.queues[2:]))
        source.push(busier)
        await fx.until(pilot, lambda: any("777/s" in t for t in rows.text()), "new drops shown")
        await pilot.press("escape")
        await fx.until(pilot, lambda: isinstance(app.screen, ConfigScreen), "back")
        assert app.screen.rows.selected == Subject("queue", "txlp1a", 0)
        await pilot.press("c")
        await fx.until(pilot, lambda: not isinstance(app.screen, ConfigScreen), "closed")
