"""The os-ken app: keeps what the lab registered and puts the matching flows on each switch.

Flows are proactive; each change is confirmed with an OpenFlow barrier. The one exception is the
wireless switch: its guests' ARP and DHCP and the server's DHCP answers come here as packet-ins,
`controllers.wireless.packet_in` decides (pure), the app installs the per-IP flows it learned and
then sends the frames out (packet-out).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    HANDSHAKE_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_v1_3

from controllers import wireless
from controllers.flowrules import (
    DHCP_METER_BURST,
    DHCP_METER_RATE,
    KIND_WIRELESS,
    PRIO_W_LEARNED,
    ROLE_GUEST,
    Flow,
    Learned,
    Port,
    Switch,
    baseline_flows,
    describe,
    diff,
    flows_for,
    meters_of,
    sort_key,
)

#: The upper half of the cookie on every flow we install ("wvpc"); the lower half is the flow's
#: fingerprint, so that a restarted controller knows which of a switch's flows are already right.
COOKIE = 0x7776_7063_0000_0000
COOKIE_MASK = 0xFFFF_FFFF_0000_0000
_FULL_MASK = 0xFFFF_FFFF_FFFF_FFFF
_BUNDLE_FLAGS = "ONF_BF_ATOMIC", "ONF_BF_ORDERED"
_ALL_STATES = [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER]
_MAX_KEPT_FAILURES = 64
#: How long a request waits for a switch when it names no timeout (no wait is unbounded).
DEFAULT_TIMEOUT = 30.0

LOG = logging.getLogger("wvpclab.controller")


class ControlError(Exception):
    """A request the controller cannot carry out; the message says why."""


@dataclass
class _Registration:
    """A switch the lab registered."""

    switch: Switch
    name: str
    epoch: int  # distinguishes successive registrations of one dpid


#: Part of every fingerprint: a new version of how flows are sent makes all of them new.
_ENCODING = "of13-v1"


def cookie_of(flow: Flow) -> int:
    """The cookie of `flow`: ours, with a fingerprint of everything the flow is."""
    return COOKIE | zlib.crc32(f"{_ENCODING}|{flow!r}".encode())


@dataclass
class _Link:
    """One live OpenFlow connection to a switch and what we have sent on it."""

    datapath: Any
    #: The flows on the switch; None until its flows were read (after a connect or an error).
    installed: frozenset[Flow] | None = None
    reading: list[Any] = field(default_factory=list)  # flow stats received so far
    found: list[Any] | None = None  # every flow entry read, until the next push sorts them
    push_when_read: bool = True  # False after a refused change: wait for the next request
    barriers: dict[int, int] = field(default_factory=dict)  # barrier xid -> change sequence
    flow_mods: dict[int, int] = field(default_factory=dict)  # flow-mod xid -> change sequence
    bundles: int = 0
    meters: set[int] = field(default_factory=set)  # meters put on the switch on this connection
    meter_mods: set[int] = field(default_factory=set)  # their xids (an existing one is fine)


class WvpcController(app_manager.OSKenApp):
    """Installs the flows of `controllers.flowrules` on the switches the lab registers.

    The control channel (another thread) calls the public methods; each returns only when the
    change is in force on the switch (after a barrier reply), waiting for the switch to connect if
    it has not yet. All state sits behind one condition variable.
    """

    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cond = threading.Condition()
        self._registered: dict[int, _Registration] = {}
        self._links: dict[int, _Link] = {}
        self._requested: dict[int, int] = defaultdict(int)  # last change sequence, per dpid
        self._confirmed: dict[int, int] = defaultdict(int)  # last sequence a barrier confirmed
        self._failures: dict[int, dict[int, str]] = defaultdict(dict)  # dpid -> seq -> error
        self._epochs = 0

    # ---- requests from the control channel -------------------------------------------------

    def add_switch(self, dpid: int, kind: str, name: str = "",
                   dhcp_steering: bool = False, timeout: float | None = None,
                   ports: tuple[Port, ...] | None = None, dhcp_guard: bool = False) -> None:
        """Register a switch with its ports (one change) and wait until its flows are in force.

        Registering the same dpid again with the same kind, name and steering sets its ports
        (when given; else it changes nothing); with anything different it is an error.
        """
        numbers = [p.number for p in ports or ()]
        if len(numbers) != len(set(numbers)):
            raise ControlError("a port number appears twice")
        try:
            switch = Switch(dpid, kind, tuple(ports or ()), dhcp_steering,
                            dhcp_guard=dhcp_guard)
            flows_for(switch)  # refuse a description the rules cannot serve
        except (ValueError, TypeError) as exc:
            raise ControlError(str(exc)) from None
        with self._cond:
            current = self._registered.get(dpid)
            if current is not None:
                same = (current.switch.kind == kind and current.name == name
                        and current.switch.dhcp_steering == dhcp_steering
                        and current.switch.dhcp_guard == dhcp_guard)
                if not same:
                    raise ControlError(
                        f"switch {dpid:#x} is already registered as {current.switch.kind} "
                        f"{current.name!r}; remove it first")
                if ports is not None:
                    current.switch = dataclasses.replace(current.switch, ports=switch.ports)
                seq = self._apply(dpid)
            else:
                self._epochs += 1
                self._registered[dpid] = _Registration(switch, name, self._epochs)
                seq = self._apply(dpid)
                LOG.info("switch %s registered: %s %r", _hex(dpid), kind, name)
            self._wait(dpid, seq, timeout)

    def remove_switch(self, dpid: int, timeout: float | None = None) -> None:
        """Forget a switch; if it is connected, leave it with only the drops, confirmed."""
        with self._cond:
            if self._registered.pop(dpid, None) is None:
                raise ControlError(f"no switch {dpid:#x} registered")
            self._cond.notify_all()
            LOG.info("switch %s removed", _hex(dpid))
            seq = self._apply(dpid)
            if dpid in self._links:
                self._wait(dpid, seq, timeout, registered=False)

    def add_port(self, dpid: int, port: Port, timeout: float | None = None) -> None:
        """Add a port (or replace the port of the same number) and wait until it is in force."""
        self._change(dpid, lambda sw: sw.with_port(port), timeout)

    def set_ports(self, dpid: int, ports: tuple[Port, ...], timeout: float | None = None) -> None:
        """Replace the switch's whole port set in one change and wait until it is in force."""
        numbers = [p.number for p in ports]
        if len(numbers) != len(set(numbers)):
            raise ControlError("a port number appears twice")
        self._change(dpid, lambda sw: dataclasses.replace(sw, ports=tuple(ports)), timeout)

    def remove_port(self, dpid: int, number: int, timeout: float | None = None) -> None:
        """Remove a port and wait until the change is in force."""
        def change(sw: Switch) -> Switch:
            if sw.port(number) is None:
                raise ControlError(f"switch {dpid:#x} has no port {number}")
            return sw.without_port(number)
        self._change(dpid, change, timeout)

    def set_steering(self, dpid: int, on: bool, timeout: float | None = None) -> None:
        """Switch DHCP steering of an internal switch on or off, and wait until in force."""
        self._change(dpid, lambda sw: sw.with_steering(on), timeout)

    def sync(self, dpid: int, timeout: float | None = None) -> None:
        """Wait until the switch is connected and everything registered for it is in force."""
        self._change(dpid, lambda sw: sw, timeout)

    def dump(self, dpid: int) -> dict[str, Any]:
        """Return what is registered for a switch and its flows as readable lines (no waiting)."""
        with self._cond:
            reg = self._require(dpid)
            link = self._links.get(dpid)
            sw = reg.switch
            return {
                "dpid": dpid,
                "name": reg.name,
                "kind": sw.kind,
                "dhcp_steering": sw.dhcp_steering,
                "dhcp_guard": sw.dhcp_guard,
                "connected": link is not None,
                "in_force": link is not None
                and self._confirmed[dpid] >= self._requested[dpid]
                and link.installed == self._desired(dpid),
                "ports": [
                    {"port": p.number, "role": p.role, "mac": p.mac,
                     "allow_spoofing": p.allow_spoofing}
                    for p in sw.ports
                ],
                "flows": describe(flows_for(sw), {p.number: p.role for p in sw.ports
                                                  if p.role != ROLE_GUEST}),
                "learned": [e.as_dict() for e in sorted(
                    sw.learned, key=lambda e: tuple(int(x) for x in e.ip.split(".")))],
            }

    def switches(self) -> list[dict[str, Any]]:
        """Return a short list of registered switches and whether each is connected."""
        with self._cond:
            return [{"dpid": dpid, "name": reg.name, "kind": reg.switch.kind,
                     "connected": dpid in self._links}
                    for dpid, reg in sorted(self._registered.items())]

    # ---- internals (callers hold self._cond) -----------------------------------------------

    def _require(self, dpid: int) -> _Registration:
        reg = self._registered.get(dpid)
        if reg is None:
            raise ControlError(f"no switch {dpid:#x} registered")
        return reg

    def _change(self, dpid: int, edit: Any, timeout: float | None) -> None:
        with self._cond:
            reg = self._require(dpid)
            try:
                new = edit(reg.switch)
                flows_for(new)  # refuse a description the rules cannot serve
            except (ValueError, TypeError) as exc:
                raise ControlError(str(exc)) from None
            reg.switch = new
            seq = self._apply(dpid)
            self._wait(dpid, seq, timeout)

    def _desired(self, dpid: int) -> frozenset[Flow]:
        reg = self._registered.get(dpid)
        return flows_for(reg.switch) if reg is not None else baseline_flows()

    def _apply(self, dpid: int) -> int:
        """Record a change for `dpid`, push it if the switch is connected; return its sequence."""
        self._requested[dpid] += 1
        seq = self._requested[dpid]
        link = self._links.get(dpid)
        if link is not None:
            self._push(dpid, link, seq)
        return seq

    def _wait(self, dpid: int, seq: int, timeout: float | None, registered: bool = True) -> None:
        """Block until a barrier confirmed change `seq` of `dpid` (the lock is released meanwhile).

        Raises:
            ControlError: on timeout, when the switch was removed meanwhile, or when the switch
                rejected a flow of this change.
        """
        epoch = self._registered[dpid].epoch if registered else None

        def done() -> bool:
            if self._confirmed[dpid] >= seq:
                return True
            reg = self._registered.get(dpid)
            return registered and (reg is None or reg.epoch != epoch)

        limit = DEFAULT_TIMEOUT if timeout is None else timeout
        name = self._registered[dpid].name if registered else ""
        if not self._cond.wait_for(done, limit):
            state = "connected" if dpid in self._links else "not connected"
            raise ControlError(f"switch {name or _hex(dpid)} ({dpid:#x}, {state}) did not "
                               f"confirm the change within {limit:g} s")
        if self._confirmed[dpid] < seq:
            raise ControlError(f"switch {dpid:#x} was removed before the change was in force")
        failure = self._failures[dpid].pop(seq, None)
        if failure is not None:
            raise ControlError(f"switch {dpid:#x} rejected a flow: {failure}")

    def _push(self, dpid: int, link: _Link, seq: int) -> None:
        """Send what turns the switch's flows into the desired set, as one atomic bundle, then a
        barrier. While the switch's flows are being read, the push waits for them."""
        if link.installed is None and link.found is not None:
            self._recover_learned(dpid, link.found)
        desired = self._desired(dpid)
        strays: list[Any] = []
        if link.installed is None:
            if link.found is None:
                link.push_when_read = True  # asked for: _on_flow_stats pushes once it knows
                return
            link.installed, strays = _sort_found(link.found, desired)
            link.found = None
        dp = link.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        to_delete, to_add = diff(link.installed, desired)
        changes = [parser.OFPFlowMod(
            dp, cookie=stat.cookie, cookie_mask=_FULL_MASK, table_id=stat.table_id,
            command=ofp.OFPFC_DELETE_STRICT, priority=stat.priority, out_port=ofp.OFPP_ANY,
            out_group=ofp.OFPG_ANY, match=stat.match) for stat in strays]
        for flow in sorted(to_delete, key=sort_key):
            changes.append(parser.OFPFlowMod(
                dp, cookie=cookie_of(flow), cookie_mask=_FULL_MASK, table_id=flow.table,
                command=ofp.OFPFC_DELETE_STRICT, priority=flow.priority,
                out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                match=parser.OFPMatch(**flow.match_dict())))
        for flow in sorted(to_add, key=sort_key):
            changes.append(parser.OFPFlowMod(
                dp, cookie=cookie_of(flow), table_id=flow.table, command=ofp.OFPFC_ADD,
                priority=flow.priority, buffer_id=ofp.OFP_NO_BUFFER,
                match=parser.OFPMatch(**flow.match_dict()),
                instructions=_instructions(flow, ofp, parser)))
        self._add_meters(link, meters_of(to_add))
        if changes:
            self._send_bundle(link, changes, seq)
        barrier = parser.OFPBarrierRequest(dp)
        link.barriers[dp.set_xid(barrier)] = seq
        dp.send_msg(barrier)
        link.installed = desired
        if changes:
            LOG.info("switch %s: change %d sent (%d deleted, %d added)", _hex(dpid), seq,
                     len(to_delete) + len(strays), len(to_add))

    def _send_bundle(self, link: _Link, changes: list[Any], seq: int) -> None:
        """Send `changes` so that the switch applies all of them at once or none: an atomic,
        ordered bundle (OpenFlow 1.3's ONF extension 230); no frame sees a half-made table."""
        dp = link.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        link.bundles += 1
        bundle = link.bundles
        flags = 0
        for name in _BUNDLE_FLAGS:
            flags |= getattr(ofp, name)
        messages = [parser.ONFBundleCtrlMsg(dp, bundle, ofp.ONF_BCT_OPEN_REQUEST, flags, [])]
        for change in changes:
            dp.set_xid(change)
            messages.append(parser.ONFBundleAddMsg(dp, bundle, flags, change, []))
            messages[-1].set_xid(change.xid)
        messages.append(parser.ONFBundleCtrlMsg(dp, bundle, ofp.ONF_BCT_COMMIT_REQUEST, flags,
                                                []))
        for msg in messages:
            if msg.xid is None:
                dp.set_xid(msg)
            link.flow_mods[msg.xid] = seq
            dp.send_msg(msg)

    def _recover_learned(self, dpid: int, found: list[Any]) -> None:
        """A wireless switch's learned table lives only here: a restarted controller reads it
        back from the per-IP flows it finds on the switch (they stay, and keep working)."""
        reg = self._registered.get(dpid)
        if reg is None or reg.switch.kind != KIND_WIRELESS or reg.switch.learned:
            return
        entries = []
        for stat in found:
            if stat.cookie & COOKIE_MASK != COOKIE or stat.priority != PRIO_W_LEARNED:
                continue
            ip = stat.match.get("ipv4_dst") or stat.match.get("arp_tpa")
            actions = [a for i in stat.instructions for a in getattr(i, "actions", [])]
            mac = next((a.value for a in actions if getattr(a, "key", None) == "eth_dst"), None)
            port = next((a.port for a in actions if hasattr(a, "port")), None)
            try:
                entries.append(Learned(ip, port, mac, "arp"))
            except (ValueError, TypeError):
                continue  # not one of ours after all: it goes as a stray
        if entries:
            reg.switch = reg.switch.with_learned(entries)
            LOG.info("switch %s: %d learned addresses read back from its flows", _hex(dpid),
                     len(reg.switch.learned))

    def _add_meters(self, link: _Link, meters: frozenset[int]) -> None:
        """Put the DHCP rate-limit meters that flows about to be added use on the switch (before
        those flows: a flow naming a missing meter is refused). One already there is kept as it
        is: every meter is the same limit."""
        dp = link.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        for meter in sorted(meters - link.meters):
            msg = parser.OFPMeterMod(dp, ofp.OFPMC_ADD, ofp.OFPMF_PKTPS | ofp.OFPMF_BURST, meter,
                                     [parser.OFPMeterBandDrop(DHCP_METER_RATE, DHCP_METER_BURST)])
            link.meter_mods.add(dp.set_xid(msg))
            dp.send_msg(msg)
            link.meters.add(meter)

    def _read_flows(self, link: _Link, push: bool = True) -> None:
        """Ask the switch for every flow it has (the answer comes to _on_flow_stats, which then
        pushes what is registered, if `push`)."""
        link.push_when_read = push
        link.meters = set()  # not known either: put again with the next push (kept if there)
        dp = link.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        link.installed, link.reading, link.found = None, [], None
        dp.send_msg(parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                               0, 0, parser.OFPMatch()))

    def _link_of(self, datapath: Any) -> tuple[int, _Link] | None:
        for dpid, link in self._links.items():
            if link.datapath is datapath:
                return dpid, link
        return None

    # ---- OpenFlow events ---------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _on_switch_features(self, ev: Any) -> None:
        """A switch (re)connected: read its flows; what differs from the registered set is then
        changed in one atomic bundle (a controller restart changes nothing on the wire).

        A second connection for a datapath id that is connected already is refused: only the
        first, live one speaks for that switch.
        """
        dp = ev.msg.datapath
        dpid = ev.msg.datapath_id  # dp.id may not be set yet when this app sees the event
        with self._cond:
            old = self._links.get(dpid)
            if old is not None and old.datapath is not dp and _alive(old.datapath):
                LOG.warning("switch %s: a second connection claims this datapath id while the "
                            "first is connected: refused", _hex(dpid))
                # closed from another thread: closing reports to this app's own event queue
                threading.Thread(target=dp.close, name="refuse", daemon=True).start()
                return
            link = _Link(dp)
            self._links[dpid] = link
            known = "registered" if dpid in self._registered else "unregistered"
            LOG.info("switch %s connected (%s); reading its flows", _hex(dpid), known)
            self._read_flows(link)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _on_flow_stats(self, ev: Any) -> None:
        """The switch's flows (possibly in several parts): keep ours that are still wanted,
        mark the rest to go, then push what is registered for it."""
        msg = ev.msg
        with self._cond:
            found = self._link_of(msg.datapath)
            if found is None:
                return
            dpid, link = found
            if link.installed is not None:
                return
            link.reading.extend(msg.body)
            if msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE:
                return
            link.found, link.reading = link.reading, []
            LOG.info("switch %s: %d flows found", _hex(dpid), len(link.found))
            # A switch the lab has not registered (yet: a restarted controller is told everything
            # again in a moment) keeps its flows as they are; one it registered or removed gets
            # what it should have.
            if self._requested.get(dpid, 0) and link.push_when_read:
                self._push(dpid, link, self._requested[dpid])

    @set_ev_cls(ofp_event.EventOFPStateChange, [DEAD_DISPATCHER])
    def _on_state_change(self, ev: Any) -> None:
        """A connection closed: forget it (a newer connection of the same dpid stays)."""
        with self._cond:
            found = self._link_of(ev.datapath)
            if found is not None:
                del self._links[found[0]]
                LOG.info("switch %s disconnected", _hex(found[0]))
            self._cond.notify_all()

    @set_ev_cls(ofp_event.EventOFPBarrierReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _on_barrier_reply(self, ev: Any) -> None:
        """Everything sent before the barrier is processed: confirm that change."""
        with self._cond:
            found = self._link_of(ev.msg.datapath)
            if found is None:
                return
            dpid, link = found
            seq = link.barriers.pop(ev.msg.xid, None)
            if seq is None:
                return
            link.flow_mods = {x: s for x, s in link.flow_mods.items() if s > seq}
            self._confirmed[dpid] = max(self._confirmed[dpid], seq)
            self._cond.notify_all()

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _on_packet_in(self, ev: Any) -> None:
        """A wireless switch's ARP/DHCP: learn, install the per-IP flows, send the frames on.

        The flow-mods (and their barrier) go before the packet-outs on the same connection, so
        a reply to a frame sent here already finds its per-IP flow on the switch.
        """
        msg = ev.msg
        dp = msg.datapath
        try:
            with self._cond:
                found = self._link_of(dp)
                if found is None:
                    return
                dpid, _link = found
                reg = self._registered.get(dpid)
                if reg is None or reg.switch.kind != KIND_WIRELESS:
                    return
                in_port = msg.match.get("in_port")
                if not isinstance(in_port, int) or msg.data is None:
                    return
                sw = reg.switch
                decision = wireless.packet_in(sw, sw.learned, in_port, bytes(msg.data))
                if decision.learned:
                    new = sw.with_learned(decision.learned)
                    if new != sw:
                        reg.switch = new
                        for entry in decision.learned:
                            LOG.info("switch %s: learned %s -> port %d (%s) from %s", _hex(dpid),
                                     entry.ip, entry.port, entry.mac, entry.how)
                        self._apply(dpid)
                if not decision.packets:
                    LOG.debug("switch %s: packet-in on %d %s", _hex(dpid), in_port,
                              decision.reason)
                ofp, parser = dp.ofproto, dp.ofproto_parser
                for port, data in decision.packets:
                    dp.send_msg(parser.OFPPacketOut(
                        dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                        actions=[parser.OFPActionOutput(port, 0)], data=data))
        except Exception:  # never let one frame take the controller down
            LOG.exception("packet-in failed")

    @set_ev_cls(ofp_event.EventOFPErrorMsg, _ALL_STATES)
    def _on_error(self, ev: Any) -> None:
        """The switch refused one of our messages: fail that change (and those computed on it)
        and read the switch's flows again; the next request tries once more."""
        msg = ev.msg
        with self._cond:
            found = self._link_of(msg.datapath)
            if found is None:
                return
            dpid, link = found
            if msg.xid in link.meter_mods:
                ofp = msg.datapath.ofproto
                if (msg.type, msg.code) != (ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_METER_EXISTS):
                    LOG.warning("switch %s: a meter was refused (type=%d code=%d)", _hex(dpid),
                                msg.type, msg.code)
                return
            seq = link.flow_mods.get(msg.xid)
            if seq is None:
                LOG.warning("switch %s: error type=%d code=%d for xid %#x", _hex(dpid),
                            msg.type, msg.code, msg.xid)
                return
            ofp = msg.datapath.ofproto
            text = (f"{ofp.ofp_error_type_to_str(msg.type)} / "
                    f"{ofp.ofp_error_code_to_str(msg.type, msg.code)}")
            LOG.error("switch %s: change %d refused: %s", _hex(dpid), seq, text)
            failures = self._failures[dpid]
            failures.setdefault(seq, text)
            for later in set(link.barriers.values()):  # computed as if this one had applied
                if later > seq:
                    failures.setdefault(later, f"an earlier change was refused: {text}")
            while len(failures) > _MAX_KEPT_FAILURES:
                failures.pop(next(iter(failures)))
            if link.installed is not None:
                # the bundle was not applied: see what is there, and try again only when asked
                # (sending the same refused change at once would only be refused again)
                self._read_flows(link, push=False)


def _instructions(flow: Flow, ofp: Any, parser: Any) -> list[Any]:
    """Return the OpenFlow instructions of `flow`: a goto-table, actions, or none (drop).

    Args:
        flow: The flow to install.
        ofp: The datapath's ``ofproto`` module.
        parser: The datapath's ``ofproto_parser`` module.
    """
    meter = [parser.OFPInstructionMeter(flow.meter, ofp.OFPIT_METER)] if flow.meter else []
    if flow.goto is not None:
        return [*meter, parser.OFPInstructionGotoTable(flow.goto)]
    actions = []
    if flow.to_controller:
        actions.append(parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER))
    actions += [parser.OFPActionOutput(port, 0) for port in flow.actions]
    actions += [parser.OFPActionSetField(**{name: value}) for name, value in flow.set_fields]
    actions += [parser.OFPActionOutput(port, 0) for port in flow.set_outputs]
    if actions:
        return [*meter, parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
    return meter


def _sort_found(found: list[Any], desired: frozenset[Flow]) -> tuple[frozenset[Flow], list[Any]]:
    """Sort the flow entries read from a switch: those that are exactly a desired flow (by the
    fingerprint in their cookie, table and priority) and the rest, which must go."""
    wanted = {cookie_of(f): f for f in desired}
    kept, strays = set(), []
    for stat in found:
        flow = wanted.get(stat.cookie)
        if flow is not None and flow.table == stat.table_id and flow.priority == stat.priority:
            kept.add(flow)
        else:
            strays.append(stat)
    return frozenset(kept), strays


def _alive(datapath: Any) -> bool:
    """True while an os-ken connection is open (not closed by either side)."""
    return (bool(datapath.is_active) and datapath.state != DEAD_DISPATCHER
            and datapath.socket.fileno() != -1)


def _hex(dpid: int) -> str:
    return f"{dpid:016x}"
