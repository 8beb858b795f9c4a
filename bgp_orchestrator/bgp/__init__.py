"""The BGP data path: the normalised update, prefixes, AS paths, parsers and the wire codec."""
