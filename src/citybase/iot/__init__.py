"""城域物联网: devices, MQTT and HTTP ingest, rules and alarms (see docs/iot.md)."""
