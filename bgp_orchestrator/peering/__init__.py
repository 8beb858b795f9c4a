"""Peering inventory: tenants, their ASNs, neighbours, BGP sessions and prefixes."""
