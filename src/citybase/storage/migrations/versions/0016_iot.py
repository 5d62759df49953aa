"""城域物联网: devices, readings (idempotent on device, attribute and time), dead letters, rule states, alarms and
the feeds of 前端分流.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "iot_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("type_code", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("grid_code", sa.String(length=32), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("last_seen_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("decommissioned_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"], name=op.f("fk_iot_devices_department_id_departments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iot_devices")),
        sa.UniqueConstraint("device_id", name=op.f("uq_iot_devices_device_id")),
    )
    op.create_index("ix_iot_devices_type_state", "iot_devices", ["type_code", "state"])
    op.create_index("ix_iot_devices_department_state", "iot_devices", ["department_id", "state"])
    op.create_index(op.f("ix_iot_devices_grid_code"), "iot_devices", ["grid_code"])
    op.create_table(
        "iot_readings",
        sa.Column("device_pk", sa.Integer(), nullable=False),
        sa.Column("attr", sa.String(length=32), nullable=False),
        sa.Column("observed_at", TZ, nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("text", sa.String(length=32), nullable=True),
        sa.Column("received_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("device_pk", "attr", "observed_at", name=op.f("pk_iot_readings")),
    )
    op.create_index("ix_iot_readings_received_at", "iot_readings", ["received_at"])
    op.create_table(
        "iot_dead_letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iot_dead_letters")),
    )
    op.create_index("ix_iot_dead_letters_device", "iot_dead_letters", ["device_id", "received_at"])
    op.create_index("ix_iot_dead_letters_reason", "iot_dead_letters", ["reason_code", "received_at"])
    op.create_table(
        "iot_rule_states",
        sa.Column("device_pk", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("since", TZ, nullable=True),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("last_at", TZ, nullable=True),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("device_pk", "rule", name=op.f("pk_iot_rule_states")),
    )
    op.create_table(
        "iot_alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_pk", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("alarm_type", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attribute", sa.String(length=32), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("text", sa.String(length=32), nullable=True),
        sa.Column("readings", sa.JSON(), nullable=False),
        sa.Column("raised_at", TZ, nullable=False),
        sa.Column("acknowledged_at", TZ, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("cleared_at", TZ, nullable=True),
        sa.Column("cleared_by", sa.String(length=64), nullable=True),
        sa.Column("clear_value", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["device_pk"], ["iot_devices.id"], name=op.f("fk_iot_alarms_device_pk_iot_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iot_alarms")),
    )
    op.create_index("ix_iot_alarms_state_raised", "iot_alarms", ["state", "raised_at"])
    op.create_index("ix_iot_alarms_device", "iot_alarms", ["device_pk", "raised_at"])
    op.create_table(
        "iot_feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("type_code", sa.String(length=16), nullable=True),
        sa.Column("area_code", sa.String(length=32), nullable=True),
        sa.Column("url", sa.String(length=1024), nullable=True),
        sa.Column("secret", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"], name=op.f("fk_iot_feeds_department_id_departments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iot_feeds")),
        sa.UniqueConstraint("name", name=op.f("uq_iot_feeds_name")),
    )
    op.create_index(op.f("ix_iot_feeds_department_id"), "iot_feeds", ["department_id"])


def downgrade() -> None:
    for table in ("iot_feeds", "iot_alarms", "iot_rule_states", "iot_dead_letters", "iot_readings", "iot_devices"):
        op.drop_table(table)
