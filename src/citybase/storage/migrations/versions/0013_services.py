"""一网通办 (services): catalogue items and their versions, bundles, applications and their parts, the
append-only timeline, ratings (好差评) and rectifications (整改).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('services_bundles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('applicant_kind', sa.String(length=8), nullable=False),
    sa.Column('members', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services_bundles')),
    sa.UniqueConstraint('code', name=op.f('uq_services_bundles_code'))
    )
    op.create_table('services_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services_items')),
    sa.UniqueConstraint('code', name=op.f('uq_services_items_code'))
    )
    op.create_table('services_item_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('legal_basis', sa.Text(), nullable=False),
    sa.Column('conditions', sa.Text(), nullable=False),
    sa.Column('applicant_kinds', sa.String(length=32), nullable=False),
    sa.Column('form_schema', sa.Text(), nullable=False),
    sa.Column('materials', sa.Text(), nullable=False),
    sa.Column('fee', sa.Float(), nullable=False),
    sa.Column('statutory_days', sa.Integer(), nullable=False),
    sa.Column('committed_days', sa.Integer(), nullable=False),
    sa.Column('instant', sa.Boolean(), nullable=False),
    sa.Column('max_visits', sa.Integer(), nullable=False),
    sa.Column('online_level', sa.String(length=16), nullable=False),
    sa.Column('steps', sa.Text(), nullable=False),
    sa.Column('result_licence_type', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_services_item_versions_department_id_departments')),
    sa.ForeignKeyConstraint(['item_id'], ['services_items.id'], name=op.f('fk_services_item_versions_item_id_services_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services_item_versions')),
    sa.UniqueConstraint('item_id', 'version', name='uq_services_item_versions_item_id_version')
    )
    op.create_index(op.f('ix_services_item_versions_department_id'), 'services_item_versions', ['department_id'], unique=False)
    op.create_index(op.f('ix_services_item_versions_item_id'), 'services_item_versions', ['item_id'], unique=False)
    op.create_index(op.f('ix_services_item_versions_name'), 'services_item_versions', ['name'], unique=False)
    op.create_table('services_applications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('bundle_id', sa.Integer(), nullable=True),
    sa.Column('item_version_id', sa.Integer(), nullable=True),
    sa.Column('applicant_kind', sa.String(length=8), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('legal_entity_id', sa.Integer(), nullable=True),
    sa.Column('owner_user_id', sa.Integer(), nullable=True),
    sa.Column('filed_by', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('members', sa.Text(), nullable=False),
    sa.Column('form', sa.Text(), nullable=False),
    sa.Column('prefilled', sa.Text(), nullable=False),
    sa.Column('exemptions', sa.Text(), nullable=False),
    sa.Column('consent', sa.Text(), nullable=False),
    sa.Column('provided', sa.Text(), nullable=False),
    sa.Column('promised_days', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bundle_id'], ['services_bundles.id'], name=op.f('fk_services_applications_bundle_id_services_bundles')),
    sa.ForeignKeyConstraint(['item_version_id'], ['services_item_versions.id'], name=op.f('fk_services_applications_item_version_id_services_item_versions')),
    sa.ForeignKeyConstraint(['legal_entity_id'], ['legal_entities.id'], name=op.f('fk_services_applications_legal_entity_id_legal_entities')),
    sa.ForeignKeyConstraint(['owner_user_id'], ['users.id'], name=op.f('fk_services_applications_owner_user_id_users')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_services_applications_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services_applications')),
    sa.UniqueConstraint('code', name=op.f('uq_services_applications_code'))
    )
    op.create_index(op.f('ix_services_applications_bundle_id'), 'services_applications', ['bundle_id'], unique=False)
    op.create_index(op.f('ix_services_applications_channel'), 'services_applications', ['channel'], unique=False)
    op.create_index(op.f('ix_services_applications_created_at'), 'services_applications', ['created_at'], unique=False)
    op.create_index(op.f('ix_services_applications_legal_entity_id'), 'services_applications', ['legal_entity_id'], unique=False)
    op.create_index(op.f('ix_services_applications_owner_user_id'), 'services_applications', ['owner_user_id'], unique=False)
    op.create_index(op.f('ix_services_applications_person_id'), 'services_applications', ['person_id'], unique=False)
    op.create_index(op.f('ix_services_applications_status'), 'services_applications', ['status'], unique=False)
    op.create_index(op.f('ix_services_applications_submitted_at'), 'services_applications', ['submitted_at'], unique=False)
    op.create_table('services_parts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('item_version_id', sa.Integer(), nullable=False),
    sa.Column('item_code', sa.String(length=32), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('after', sa.Text(), nullable=False),
    sa.Column('committed_days', sa.Integer(), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paused_from', sa.String(length=16), nullable=True),
    sa.Column('corrections', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=8), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('supervised_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['services_applications.id'], name=op.f('fk_services_parts_application_id_services_applications')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_services_parts_department_id_departments')),
    sa.ForeignKeyConstraint(['item_version_id'], ['services_item_versions.id'], name=op.f('fk_services_parts_item_version_id_services_item_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services_parts'))
    )
    op.create_index(op.f('ix_services_parts_application_id'), 'services_parts', ['application_id'], unique=False)
    op.create_index(op.f('ix_services_parts_deadline_at'), 'services_parts', ['deadline_at'], unique=False)
    op.create_index('ix_services_parts_department_status', 'services_parts', ['department_id', 'status'], unique=False)
    op.create_index(op.f('ix_services_parts_item_version_id'), 'services_parts', ['item_version_id'], unique=False)
    op.create_index(op.f('ix_services_parts_status'), 'services_parts', ['status'], unique=False)
    op.create_table('services_ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('grade', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('by', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['services_applications.id'], name=op.f('fk_services_ratings_application_id_services_applications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services_ratings')),
    sa.UniqueConstraint('application_id', name=op.f('uq_services_ratings_application_id'))
    )
    op.create_index(op.f('ix_services_ratings_at'), 'services_ratings', ['at'], unique=False)
    op.create_table('services_rectifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rating_id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('action_taken', sa.Text(), nullable=True),
    sa.Column('callback_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('callback_note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['services_applications.id'], name=op.f('fk_services_rectifications_application_id_services_applications')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_services_rectifications_department_id_departments')),
    sa.ForeignKeyConstraint(['rating_id'], ['services_ratings.id'], name=op.f('fk_services_rectifications_rating_id_services_ratings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services_rectifications')),
    sa.UniqueConstraint('rating_id', name=op.f('uq_services_rectifications_rating_id'))
    )
    op.create_index(op.f('ix_services_rectifications_application_id'), 'services_rectifications', ['application_id'], unique=False)
    op.create_index(op.f('ix_services_rectifications_department_id'), 'services_rectifications', ['department_id'], unique=False)
    op.create_table('services_timeline',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('part_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['services_applications.id'], name=op.f('fk_services_timeline_application_id_services_applications')),
    sa.ForeignKeyConstraint(['part_id'], ['services_parts.id'], name=op.f('fk_services_timeline_part_id_services_parts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services_timeline'))
    )
    op.create_index(op.f('ix_services_timeline_application_id'), 'services_timeline', ['application_id'], unique=False)

    # The timeline is append-only in the database itself.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION citybase_services_timeline_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'services_timeline is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER services_timeline_append_only BEFORE UPDATE OR DELETE ON services_timeline "
            "FOR EACH ROW EXECUTE FUNCTION citybase_services_timeline_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER services_timeline_no_{verb.lower()} BEFORE {verb} ON services_timeline "
                "BEGIN SELECT RAISE(ABORT, 'services_timeline is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS services_timeline_append_only ON services_timeline")
        op.execute("DROP FUNCTION IF EXISTS citybase_services_timeline_append_only()")


    op.drop_index(op.f('ix_services_timeline_application_id'), table_name='services_timeline')
    op.drop_table('services_timeline')
    op.drop_index(op.f('ix_services_rectifications_department_id'), table_name='services_rectifications')
    op.drop_index(op.f('ix_services_rectifications_application_id'), table_name='services_rectifications')
    op.drop_table('services_rectifications')
    op.drop_index(op.f('ix_services_ratings_at'), table_name='services_ratings')
    op.drop_table('services_ratings')
    op.drop_index(op.f('ix_services_parts_status'), table_name='services_parts')
    op.drop_index(op.f('ix_services_parts_item_version_id'), table_name='services_parts')
    op.drop_index('ix_services_parts_department_status', table_name='services_parts')
    op.drop_index(op.f('ix_services_parts_deadline_at'), table_name='services_parts')
    op.drop_index(op.f('ix_services_parts_application_id'), table_name='services_parts')
    op.drop_table('services_parts')
    op.drop_index(op.f('ix_services_applications_submitted_at'), table_name='services_applications')
    op.drop_index(op.f('ix_services_applications_status'), table_name='services_applications')
    op.drop_index(op.f('ix_services_applications_person_id'), table_name='services_applications')
    op.drop_index(op.f('ix_services_applications_owner_user_id'), table_name='services_applications')
    op.drop_index(op.f('ix_services_applications_legal_entity_id'), table_name='services_applications')
    op.drop_index(op.f('ix_services_applications_created_at'), table_name='services_applications')
    op.drop_index(op.f('ix_services_applications_channel'), table_name='services_applications')
    op.drop_index(op.f('ix_services_applications_bundle_id'), table_name='services_applications')
    op.drop_table('services_applications')
    op.drop_index(op.f('ix_services_item_versions_name'), table_name='services_item_versions')
    op.drop_index(op.f('ix_services_item_versions_item_id'), table_name='services_item_versions')
    op.drop_index(op.f('ix_services_item_versions_department_id'), table_name='services_item_versions')
    op.drop_table('services_item_versions')
    op.drop_table('services_items')
    op.drop_table('services_bundles')
