"""The running lab on this machine: its Mininet nodes, switches and links, the batched realizer,
the controller process, DHCP and DNS services, and what a lab leaves behind."""
