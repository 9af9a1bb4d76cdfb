"""wvpclab: Windows Virtual PC networking (not connected, bridge, shared/NAT, internal) on Mininet.

``wvpclab.topology`` turns topology files into validated graphs; the running lab comes with ``Lab``.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("Lab", "LabError"):
        from wvpclab import lab

        return getattr(lab, name)
    raise AttributeError(name)
