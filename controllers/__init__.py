"""The OpenFlow side of wvpclab: pure flow rules, the os-ken app and its launcher.

`flowrules` decides the flows (no os-ken import); `app`, `channel` and `main` put them on switches.
"""
