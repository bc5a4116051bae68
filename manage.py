#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A missing or wrong setting (e.g. SECRET_KEY with DEBUG off): say what to configure, in one
        # line, instead of a traceback.
        sys.exit(f"manage.py: configuration error: {exc}")


if __name__ == "__main__":
    main()
