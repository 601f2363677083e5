"""``python -m flows.cli``: the ``shotflow`` command."""

from ._main import console_main

console_main()
