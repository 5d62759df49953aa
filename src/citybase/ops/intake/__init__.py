"""Intake: every channel a report arrives by (internal API, 12345 hotline, grid inspectors, Open311
GeoReport v2, IoT alarms on the bus) maps onto one intake function."""
