"""wvpclab: Windows Virtual PC networking (not connected, bridge, shared/NAT, internal) on Mininet.

The package shows the architecture: ``model`` (topology files -> a validated graph -> a plan; pure),
``runtime`` (the running lab on this machine), ``cluster`` (a lab over several servers),
``analysis`` (what reaches what, the picture) and ``ui`` (the command, the CLI, the web page).

For scripts: ``from wvpclab import Lab, topology`` (``topology`` is ``wvpclab.model.topology``).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("Lab", "LabError"):
        from wvpclab.runtime import lab

        return getattr(lab, name)
    if name == "topology":
        from wvpclab.model import topology

        return topology
    raise AttributeError(name)
