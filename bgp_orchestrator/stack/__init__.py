"""Bringing the whole stack up and down: services, migrations, Ray head, Serve apps.

The Ray adapters of the core package live here (and in ``cli``); Ray itself is
driven through its CLI and the dashboard's REST API, so importing these
modules does not import Ray.
"""
