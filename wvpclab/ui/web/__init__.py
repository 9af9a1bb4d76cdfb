"""The lab's web page (``wvpclab run FILE --web``, ``web`` in the CLI): WVPC's Settings dialog for
each VM beside the lab's picture, drawn live. ``server`` serves it, ``state`` says what it shows,
``guard`` decides who may use it."""
