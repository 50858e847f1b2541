"""spectra.observation_id (ROSOBSID): a re-reduction replaces the earlier version

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 21:50:00

Existing rows are back-filled from the stored header (the ``header`` JSON keeps
every FITS card, ROSOBSID included), with the same rules as
``spectra.observation_id``: trimmed, at most 120 characters, NULL when absent
or empty. Earlier duplicates of one observation (uploaded before this
revision) keep their rows: the next re-reduction replaces the newest of them.
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('spectra', schema=None) as batch_op:
        batch_op.add_column(sa.Column('observation_id', sa.String(length=120), nullable=True))
        batch_op.create_index(batch_op.f('ix_spectra_observation_id'), ['observation_id'], unique=False)

    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        # json_extract gives the JSON value's SQL form (text, or a number for a numeric card).
        op.execute(
            "UPDATE spectra SET observation_id = NULLIF(SUBSTR(TRIM(CAST(json_extract(header, '$.ROSOBSID') AS TEXT)), 1, 120), '') "
            "WHERE json_valid(header) AND json_type(header, '$.ROSOBSID') IN ('text', 'integer', 'real')"
        )
    elif dialect == 'postgresql':
        op.execute(
            "UPDATE spectra SET observation_id = NULLIF(SUBSTR(TRIM(header->>'ROSOBSID'), 1, 120), '') "
            "WHERE json_typeof(header->'ROSOBSID') IN ('string', 'number')"
        )
    # Other databases are not supported by ROSACE; their rows would stay NULL (never replaced).


def downgrade() -> None:
    with op.batch_alter_table('spectra', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spectra_observation_id'))
        batch_op.drop_column('observation_id')
