"""What a user touches: the `wvpclab` command, the Mininet CLI extended for a lab, and the web
page."""
