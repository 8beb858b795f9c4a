"""Who is calling: OIDC bearer tokens, API keys, and the roles they carry."""
