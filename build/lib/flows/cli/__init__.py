"""The ``shotflow`` command line: ``plan``, ``schema``, ``run``, ``resume``, ``show``, ``server``."""

from ._main import console_main, main

__all__ = ["console_main", "main"]
