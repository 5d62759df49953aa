"""Context source registrations (CIM 009 §5.9, §6.8) and the distributed queries they make possible: a
district twin answers for entities a street's twin or the city's holds, without copying them."""
