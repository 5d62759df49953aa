"""Base registries (基础库): departments, persons (自然人库) and legal entities (法人库)."""
