#!/usr/bin/env python
"""Django's command-line utility for Assmbl Mail."""

import os
import sys

from assmbl.devenv import devenv_load


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")
    # Another shell beside `make run` gets the settings it recorded (DEBUG=1, its secrets and
    # ports); a machine without DATA_DIR/dev.env (production) gets nothing from here.
    devenv_load(os.environ)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
