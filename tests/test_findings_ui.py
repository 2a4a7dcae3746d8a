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


# ---- findings: the strip, the view, the jump --------------------------------------------------

from txtop.core.finding import Finding  # noqa: E402
from txtop.core.history import CpuTarget, QueueTarget  # noqa: E402
from txtop.tui.findings_text import evidence_text, strip_capacity, strip_lines, strip_rows  # noqa: E402
from txtop.tui.findings_view import FindingsScreen, FindingsStrip  # noqa: E402
from txtop.tui.layout import panel_heights  # noqa: E402

FINDINGS = (
    Finding(
        "qdisc_drops",
        "crit",
        Subject("queue", "txlp1a", 0),
        "txlp1a tx-0: tbf 10: (limit 3000 bytes) drops 310/s",
        {
            "qdisc": "tbf",
            "drops_per_s": 310.0,
            "drops": 12400,
            "limit": 3000,
            "limit_unit": "bytes",
        },
        "the tbf limit (or the rate that fills it)",
        "tc -s qdisc show dev txlp1a parent 1:1",
        since=fx.TIME + 30,
    ),
    Finding(
        "qdisc_wait",
        "warn",
        Subject("queue", "txlp1a", 0),
        "txlp1a tx-0: p99 qdisc wait 405ms is 98% of p99 total (tbf 10: (limit 3000 bytes): shaping)",
        {"qdisc": "tbf", "qdisc_p99_ns": 405_000_000, "share_pct": 97.8, "samples": 180},
        "the tbf rate, or what is sent through it",
        "tc -s qdisc show dev txlp1a parent 1:1",
        since=fx.TIME + 31,
    ),
    Finding(
        "softnet_squeeze",
        "warn",
        Subject("cpu", cpu=0),
        "cpu0: softirq budget ran out 3.0/s (time_squeeze; budget 300 pkts / 8000 us)",
        {"time_squeeze_per_s": 3.0, "time_squeeze": 57, "netdev_budget": "300"},
        "net.core.netdev_budget / netdev_budget_usecs",
        "sysctl -w net.core.netdev_budget=600",
        since=fx.TIME + 20,
    ),
    Finding(
        "probe_losses",
        "warn",
        Subject("probes"),
        "probes lose 12 events/s (ring buffer or track table full): sampling too aggressive",
        {"lost_per_s": 12.0},
        "sampling",
        "txtop --sample 256",
        state="cleared",
        since=fx.TIME + 2,
        cleared_at=fx.TIME + 25,
    ),
)


def with_findings(snap: Snapshot | None = None, found=FINDINGS) -> Snapshot:
    return dataclasses.replace(configured(snap), findings=tuple(found))


def test_strip_lines_roles_and_overflow() -> None:
    snap = with_findings()
    lines = strip_lines(snap, 80, 2)
    assert len(lines) == 2 and all(frag_len(line) == 80 for line in lines)
    assert lines[0][0] == ("CRIT ", "alert") and line_text(lines[0]).endswith(" f: details")
    assert line_text(lines[1]).endswith("+2 more (f)")
    everything = strip_lines(snap, 120, 5)
    cleared = everything[-1]
    assert "(cleared)" in line_text(cleared) and {role for _, role in cleared} <= {"dim", "text"}
    assert strip_lines(fx.busy_lab(), 80, 2) == [] and strip_lines(snap, 80, 0) == []
    assert [strip_capacity(h) for h in (24, 30, 40, 60)] == [2, 3, 5, 5]
    assert strip_rows(snap, 24) == 2 and strip_rows(fx.busy_lab(), 24) == 0


def test_the_strip_takes_rows_from_the_waterfall_not_the_panels() -> None:
    plain = panel_heights(fx.busy_lab(), 80, 24)
    found = panel_heights(with_findings(), 80, 24)
    assert plain["#findings"] == 0 and found["#findings"] == 2
    assert found["#queues"] >= 4 and found["#cpus"] >= 4
    used = 2 + 1 + found["#findings"] + found["#queues"] + found["#cpus"]
    assert 24 - used >= 6  # the waterfall keeps its rows
    wide = panel_heights(with_findings(), 160, 50)
    assert wide["#findings"] == 4


def test_evidence_text_units() -> None:
    text = evidence_text(FINDINGS[0].evidence)
    assert "drops 310/s (12400 total)" in text and "limit 3000" in text
    assert "qdisc p99 405ms" in evidence_text(FINDINGS[1].evidence)


def test_strip_and_panels_at_80x24() -> None:
    asyncio.run(_strip_80x24())


async def _strip_80x24() -> None:
    source = fx.ManualSource(configured())
    app = TxtopApp(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await _shown(pilot)
        strip = app.query_one(FindingsStrip)
        assert strip.size.height == 0
        source.push(with_findings())
        await fx.until(pilot, lambda: strip.size.height == 2, "the strip")
        assert strip.text()[0].startswith("CRIT txlp1a tx-0: tbf")
        for selector, rows in (("#queues", 4), ("#cpus", 4), ("#wf-box", 6)):
            assert app.query_one(selector).outer_size.height >= rows, selector
        total = sum(
            app.query_one(s).outer_size.height
            for s in ("#header", "#findings", "#top", "#wf-box", "#keys")
        )
        assert total == 24
        source.push(configured())  # findings gone (a source without rules): strip gone
        await fx.until(pilot, lambda: strip.size.height == 0, "no strip")


def test_findings_view_details_and_jumps() -> None:
    asyncio.run(_findings_view())


async def _findings_view() -> None:
    app = TxtopApp(fx.ManualSource(with_findings()))
    async with app.run_test(size=(100, 30)) as pilot:
        await _shown(pilot)
        await pilot.press("f")
        await fx.until(pilot, lambda: isinstance(app.screen, FindingsScreen), "the view")
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        await fx.until(pilot, lambda: screen.selected() is not None, "a finding selected")
        detail = screen.query_one("#findings-detail")
        text = "\n".join(detail.text())
        assert "evidence" in text and "tc -s qdisc show dev txlp1a parent 1:1" in text
        assert "active since" in text
        # enter: to the queue's row in the dashboard, selected and focused.
        await pilot.press("enter")
        await fx.until(pilot, lambda: not isinstance(app.screen, FindingsScreen), "closed")
        from txtop.tui.panels import CpusPanel, QueuesPanel

        queues = app.query_one(QueuesPanel)
        await fx.until(pilot, lambda: app.focused is queues, "the queues panel focused")
        assert queues.selected == QueueTarget("txlp1a", 0)
        # The CPU finding (third) jumps to the CPU's row.
        await pilot.press("f")
        await fx.until(pilot, lambda: isinstance(app.screen, FindingsScreen), "the view again")
        await pilot.press("down", "down")
        await fx.until(pilot, lambda: app.screen.selected().subject.kind == "cpu", "cpu row")
        await fx.until(
            pilot,
            lambda: (
                "netdev_budget=600" in "\n".join(app.screen.query_one("#findings-detail").text())
            ),
            "the CPU finding's details",
        )
        await pilot.press("enter")
        cpus = app.query_one(CpusPanel)
        await fx.until(pilot, lambda: app.focused is cpus, "the CPU panel focused")
        assert cpus.selected == CpuTarget(0)
        # c: the config view with the cursor on the finding's row.
        await pilot.press("f")
        await fx.until(pilot, lambda: isinstance(app.screen, FindingsScreen), "the view, third")
        await pilot.press("c")
        await fx.until(pilot, lambda: isinstance(app.screen, ConfigScreen), "config view")
        await fx.until(
            pilot, lambda: app.screen.rows.selected == Subject("queue", "txlp1a", 0), "its row"
        )


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_with_findings_snapshot(snap_compare, size, monkeypatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    app = TxtopApp(fx.ManualSource(with_findings()))

    async def run_before(pilot) -> None:
        await _shown(pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_findings_view_snapshot(snap_compare, monkeypatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    app = TxtopApp(fx.ManualSource(with_findings()))

    async def run_before(pilot) -> None:
        await _shown(pilot)
        await pilot.press("f")
        await fx.until(pilot, lambda: isinstance(app.screen, FindingsScreen), "the view")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_config_view_snapshot(snap_compare, monkeypatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    app = TxtopApp(fx.ManualSource(with_findings()))

    async def run_before(pilot) -> None:
        await _shown(pilot)
        await pilot.press("c")
        await fx.until(pilot, lambda: isinstance(app.screen, ConfigScreen), "the view")
        await pilot.press("down", "down", "down")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
