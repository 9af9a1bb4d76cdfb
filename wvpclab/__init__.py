"""wvpclab: Windows Virtual PC networking (not connected, bridge, shared/NAT, internal) on Mininet.

``wvpclab.topology`` turns topology files into validated graphs; the running lab comes with ``Lab``.
"""

__version__ = "0.1.0"
