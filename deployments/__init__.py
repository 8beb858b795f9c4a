"""Ray Serve applications: thin wiring of the core package's ASGI apps and actors.

``serve_config.yaml`` beside this file is the single Serve config: `bgpo up`
deploys it on the local head and ``cluster/rayservice.yaml`` embeds it.
"""
