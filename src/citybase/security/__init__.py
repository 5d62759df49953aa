"""Identity, access and audit: users, roles, bearer tokens, masking policy, the hash-chained audit log."""
