"""The emulated DEC/Intel 21140A NIC as a Mininet interface: MAC, MTU, speed and carrier.

The guest end lives in the VM's namespace as ``ethN``; its peer (the "cable") lives in the root
namespace as a switch port. The lab creates both ends in one iproute2 batch; this class describes
them.
"""

from __future__ import annotations

from typing import Any

from mininet.link import Intf

MTU = 1500
#: htb burst per direction: about 1.2 ms at 100 Mbit/s, enough for TSO segments without bursts that
#: distort the rate.
_BURST = "15k"


def rate_of(speed: int | str) -> str | None:
    """The htb rate for a topology ``speed`` (10 / 100 Mbit/s), or None for ``unlimited``."""
    return None if speed == "unlimited" else f"{int(speed)}mbit"


def rx_shaper(dev: str) -> str:
    """The IFB device that carries NIC ``dev``'s received traffic through its shaper."""
    return f"{dev}-rx"


def shaping_links(dev: str, speed: int | str) -> list[str]:
    """``ip -batch`` lines (in the guest) for the receive shaper of ``dev`` (none for unlimited)."""
    if rate_of(speed) is None:
        return []
    return [f"link add {rx_shaper(dev)} mtu {MTU} type ifb",
            f"link set dev {rx_shaper(dev)} addrgenmode none",  # no IPv6 address on the shaper
            f"link set {rx_shaper(dev)} up"]


def shaping_commands(dev: str, speed: int | str) -> list[str]:
    """``tc -batch`` lines (in the guest) that hold ``dev`` to the NIC's speed both ways.

    Sending: htb on ``dev``. Receiving: frames arrive from the switch's userspace datapath, which
    bypasses the root-side qdisc, so they are redirected at ``dev``'s ingress to an IFB and shaped
    there with the same htb.
    """
    rate = rate_of(speed)
    if rate is None:
        return []
    lines = []
    for out in (dev, rx_shaper(dev)):
        lines += [f"qdisc replace dev {out} root handle 1: htb default 1",
                  (f"class replace dev {out} parent 1: classid 1:1 htb rate {rate} ceil {rate} "
                   f"burst {_BURST} cburst {_BURST}")]
    lines += [f"qdisc add dev {dev} handle ffff: ingress",
              (f"filter add dev {dev} parent ffff: protocol all u32 match u32 0 0 "
               f"action mirred egress redirect dev {rx_shaper(dev)}")]
    return lines


class LabIntf(Intf):
    """An interface the lab made in a batch (already where it belongs): Mininet's own set-up, which
    runs one ``ifconfig`` per setting, is skipped; its address is read from the system when asked,
    so it is true also after DHCP or a change."""

    def __init__(self, name: str, node: Any, port: int | None = None, mac: str | None = None,
                 **params: Any) -> None:
        super().__init__(name, node=node, port=port, mac=mac,
                         moveIntfFn=lambda *args, **kwargs: None, **params)

    def config(self, **params: Any) -> dict:
        return {}

    def updateIP(self) -> str | None:
        """The interface's current IPv4 address (static or from DHCP), read with iproute2."""
        if self.name == "lo":
            return self.ip
        out = self.node.cmd(f"ip -4 -o addr show dev {self.name} scope global")
        fields = out.split()
        if "inet" in fields:
            self.ip, self.prefixLen = fields[fields.index("inet") + 1].split("/")
            return self.ip
        self.ip = None
        return None

    def IP(self) -> str | None:
        return self.updateIP()

    def updateMAC(self) -> str | None:
        return self.mac

    def MAC(self) -> str | None:
        return self.mac

    def status(self) -> str:
        """``OK`` while the interface exists in its node, else ``MISSING``."""
        out = self.node.cmd(f"ip -o link show dev {self.name} 2>&1")
        return "OK" if self.name in out and "does not exist" not in out else "MISSING"

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {self.node.name}:{self.name}>"


class Tulip21140Intf(LabIntf):
    """A guest NIC: ``ethN`` in the VM, ``mac`` 00:03:ff:…, MTU 1500, 10/100 Mbit/s, a cable."""

    def __init__(self, name: str, node: Any, port: int, mac: str, peer: str,
                 speed: int | str = 100, index: int = 0) -> None:
        self.peer = peer  # the root-namespace end: the switch port ("the cable")
        self.speed = speed
        self.index = index
        super().__init__(name, node=node, port=port, mac=mac)

    def carrier(self) -> bool:
        """True when the guest sees a carrier (the cable is plugged in)."""
        out = self.node.cmd(f"cat /sys/class/net/{self.name}/carrier 2>/dev/null").strip()
        return out == "1"

    def __repr__(self) -> str:
        return f"<Tulip21140Intf {self.node.name}:{self.name} {self.mac}>"
