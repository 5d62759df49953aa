"""数字孪生: the city's live twin, an NGSI-LD context broker."""
