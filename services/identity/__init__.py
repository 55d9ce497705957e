"""identity: people and accounts, credentials, scoped role grants, tokens and their signing keys."""
