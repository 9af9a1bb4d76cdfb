"""``python -m wvpclab``: the ``wvpclab`` command."""

from wvpclab.ui.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
