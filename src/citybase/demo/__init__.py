"""The demo city: a deterministic generator of a district at a real Shanghai district's scale."""
