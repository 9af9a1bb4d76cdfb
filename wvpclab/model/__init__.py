"""The pure model: topology files and graphs, the four NIC modes, and the plan of a lab (no root,
no I/O beyond reading a file)."""
