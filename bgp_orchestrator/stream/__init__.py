"""Consuming the update stream: one consume → process → store → commit loop for every worker.

:mod:`loop` holds :class:`~.loop.ConsumeLoop` and the :class:`~.loop.Processor`
protocol the detector and the session stats implement; :mod:`progress` keeps
each partition's lag and last progress (for health checks, metrics and
``bgpo status``); :mod:`clients` builds the Kafka clients.
"""
