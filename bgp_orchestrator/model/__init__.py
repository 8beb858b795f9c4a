"""The BGP data model: autonomous system numbers, addresses and prefixes."""
