"""A fake second server on this machine, for tests and benchmarks of labs spread over servers.

A network namespace with its own mount, UTS and PID namespaces (``unshare``): a tmpfs ``/run``, its
own Open vSwitch (database, ovsdb-server, ovs-vswitchd: userspace datapath with userspace TSO), its
own sshd listening only on its end of a veth from the root namespace (198.18.0.0/15, the
benchmarking range, never routed anywhere), its own ``/etc/hosts`` and a ``/usr/local/sbin`` whose
``wvpclab`` is this checkout's. Killing its PID 1 ends everything in it; ``down`` leaves nothing.

The ssh client side is a config file (``ssh_config``) with the key and the server's host key, given
to wvpclab as ``WVPCLAB_SSH_CONFIG``: nothing in root's home or in /etc is touched."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing.Self is Python 3.11+
    from typing import Self

ROOT = Path(__file__).resolve().parents[1]
#: Hardening of the root namespace's end (as every lab interface there): it answers no ARP, so the
#: fake server has a permanent neighbour entry for it.
ROOT_SYSCTLS = ("net.ipv4.conf.{dev}.arp_ignore=8", "net.ipv4.conf.{dev}.rp_filter=1",
                "net.ipv6.conf.{dev}.disable_ipv6=1")

_INIT = r"""
set -e
W="$1"
hostname "$2"
mount -t tmpfs -o mode=755,size=64m wvfake-run /run
mkdir -p /run/openvswitch /run/sshd /run/lock
mount --bind "$W/hosts" /etc/hosts
mount -t tmpfs -o mode=755,size=1m wvfake-sbin /usr/local/sbin
ln -s "$3" /usr/local/sbin/wvpclab
ovsdb-tool create "$W/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server "$W/conf.db" --remote=punix:/run/openvswitch/db.sock \
  --pidfile=/run/openvswitch/ovsdb-server.pid --log-file="$W/ovsdb-server.log" \
  -vconsole:off --detach --no-chdir
ovs-vsctl --no-wait init
ovs-vsctl --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
ovs-vswitchd unix:/run/openvswitch/db.sock --pidfile=/run/openvswitch/ovs-vswitchd.pid \
  --log-file="$W/ovs-vswitchd.log" -vconsole:off --detach --no-chdir
/usr/sbin/sshd -f "$W/sshd_config" -E "$W/sshd.log"
echo ready > "$W/ready"
trap 'exit 0' TERM
while :; do sleep 3600 & wait $!; done
"""


class FakeServer:
    """Server ``name`` number ``index`` (0..): reachable over ssh as root at ``address``."""

    def __init__(self, name: str = "far", index: int = 0, tunnels: bool = True) -> None:
        self.name = name
        self.index = index
        self.tunnels = tunnels  # sshd's PermitTunnel
        self.ns = f"wvfake{index}"
        self.root_dev = f"wvfake{index}"
        self.dev = f"wvfake{index}p"
        self.root_ip = f"198.18.0.{4 * index + 1}"
        self.address = f"198.18.0.{4 * index + 2}"
        self.dir: Path | None = None
        self.launcher: subprocess.Popen | None = None
        self.init_pid: int | None = None

    @property
    def ssh_config(self) -> Path:
        assert self.dir is not None
        return self.dir / "ssh_config"

    def entry(self) -> dict[str, str]:
        """The server as a topology file's ``servers`` section names it."""
        return {"host": self.address, "user": "root"}

    # -- up ---------------------------------------------------------------------------------------
    def up(self) -> Self:
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def _up(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"wvpclab-fake-{self.name}-"))
        w = self.dir
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "wvpclab-test",
             "-f", str(w / "id_ed25519")])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name,
             "-f", str(w / "host_key")])
        shutil.copy(w / "id_ed25519.pub", w / "authorized_keys")
        host_key = " ".join((w / "host_key.pub").read_text().split()[:2])
        (w / "known_hosts").write_text(f"{self.address} {host_key}\n")
        (w / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n"
                                 f"{self.address} {self.name}\n")
        (w / "sshd_config").write_text(f"""ListenAddress {self.address}
HostKey {w}/host_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile {w}/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitTunnel {'yes' if self.tunnels else 'no'}
UseDNS no
MaxSessions 64
MaxStartups 64:30:128
X11Forwarding no
PrintMotd no
LogLevel INFO
""")
        self.ssh_config.write_text(f"""Host {self.address}
  User root
  IdentityFile {w}/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile {w}/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  LogLevel ERROR
""")
        self.ssh_config.chmod(0o600)
        run(["ip", "netns", "add", self.ns])
        run(["ip", "link", "add", self.root_dev, "type", "veth", "peer", "name", self.dev,
             "netns", self.ns])
        run(["sysctl", "-qw", *(s.format(dev=self.root_dev) for s in ROOT_SYSCTLS)])
        run(["ip", "addr", "add", f"{self.root_ip}/30", "dev", self.root_dev])
        run(["ip", "link", "set", self.root_dev, "up"])
        ns = ["ip", "netns", "exec", self.ns]
        run([*ns, "sysctl", "-qw", f"net.ipv6.conf.{self.dev}.disable_ipv6=1"])
        run(["ip", "-n", self.ns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.ns, "addr", "add", f"{self.address}/30", "dev", self.dev])
        run(["ip", "-n", self.ns, "link", "set", self.dev, "up"])
        mac = Path(f"/sys/class/net/{self.root_dev}/address").read_text().strip()
        run(["ip", "-n", self.ns, "neigh", "replace", self.root_ip, "lladdr", mac, "dev",
             self.dev, "nud", "permanent"])
        wvpclab = Path(sys.executable).with_name("wvpclab")
        if not wvpclab.exists():
            wvpclab = ROOT / ".venv" / "bin" / "wvpclab"
        self.launcher = subprocess.Popen(
            [*ns, "unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc",
             "--propagation", "private", "bash", "-c", _INIT, "init", str(w), self.name,
             str(wvpclab)],
            stdin=subprocess.DEVNULL, stdout=(w / "init.log").open("w"),
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while not (w / "ready").exists():
            if self.launcher.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fake server {self.name} did not start: "
                                   f"{(w / 'init.log').read_text()[-2000:]}")
            time.sleep(0.05)
        children = Path(f"/proc/{self.launcher.pid}/task/{self.launcher.pid}/children")
        self.init_pid = int(children.read_text().split()[0])

    # -- use --------------------------------------------------------------------------------------
    def ssh(self, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Runs ``command`` on the server over ssh, as the lab would."""
        return subprocess.run(["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes",
                               self.address, command], capture_output=True, text=True,
                              timeout=timeout, check=False)

    def inside(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Runs ``argv`` inside the server without ssh (its network, mount and PID namespaces)."""
        assert self.init_pid is not None
        return subprocess.run(["nsenter", "-t", str(self.init_pid), "-n", "-m", "-p", "-u",
                               *argv], capture_output=True, text=True, timeout=timeout,
                              check=False)

    def cut(self) -> None:
        """The server drops off the network: it drops whatever reaches it, so connections to it
        time out. (Its route stays: with the veth down, its address would be routed by the
        machine's default route, out of the real uplink.)"""
        res = self.inside("iptables", "-I", "INPUT", "-j", "DROP")
        if res.returncode != 0:
            raise RuntimeError(f"cutting {self.name} off: {res.stderr}")

    def uncut(self) -> None:
        """Back on the network."""
        self.inside("iptables", "-D", "INPUT", "-j", "DROP")

    # -- down -------------------------------------------------------------------------------------
    def down(self) -> None:
        """Ends everything in the server, its namespace, its veth and its files."""
        if self.init_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
        if self.launcher is not None:
            try:
                self.launcher.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.launcher.pid, signal.SIGKILL)
                self.launcher.wait(5)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.root_dev], capture_output=True, check=False)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = self.launcher = self.init_pid = None

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def run(argv: list[str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")


__all__ = ["FakeServer"]
