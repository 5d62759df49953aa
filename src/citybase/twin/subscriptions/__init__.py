"""NGSI-LD subscriptions and notifications of the twin (CIM 009 v1.8 §5.8, §5.11); ``wiring`` names what the
twin's descriptor mounts and runs."""
