"""spectra.owner_account: ownership by account id, not by name

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 13:30:00

An observer account named like the installation's default owner could change or
delete the installation's spectra, because ownership compared names. Rows are
back-filled from the account of the same name; rows with no such account belong
to the installation (NULL). A database where an account already shared the
installation's name cannot be told apart afterwards: those rows go to the account.
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('spectra', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_account', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_spectra_owner_account'), ['owner_account'], unique=False)
    op.execute("UPDATE spectra SET owner_account = (SELECT accounts.id FROM accounts WHERE accounts.name = spectra.owner)")


def downgrade() -> None:
    with op.batch_alter_table('spectra', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spectra_owner_account'))
        batch_op.drop_column('owner_account')
