"""Parsers from BGP sources to :class:`~bgp_orchestrator.bgp.update.Update`.

Every parser returns updates for what it understood and raises (or reports)
:class:`Malformed` with a reason for what it did not, so the caller can send
the input to the dead-letter topic and go on.
"""
