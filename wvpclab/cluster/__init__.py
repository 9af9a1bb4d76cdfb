"""A lab spread over several servers: ssh to them, the agent each runs, and the tunnels between."""
