"""The local fault-injection suite: experiments against a stack `bgpo up` started.

Each experiment states its hypothesis, replays a simulated stream with labelled
incidents (known expected conflicts) into the stack, injects one fault, and
measures what the stack lost, duplicated or missed (`bgpo chaos run`).
"""
