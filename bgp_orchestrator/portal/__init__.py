"""The customer portal: server-rendered pages behind the OIDC login (a Serve app at /portal)."""
