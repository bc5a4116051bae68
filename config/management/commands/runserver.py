"""``runserver`` as Django's (with static files), reading chunked request bodies (config.chunked).

The ``config`` app is listed before ``django.contrib.staticfiles`` so this command is the one found."""

from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver

from config.chunked import DevServer


class Command(StaticRunserver):
    server_cls = DevServer
