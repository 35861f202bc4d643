"""hop ledger

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 15:45:01.621753
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('queries',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('user_id', sa.String(length=200), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('final_answer', sa.Text(), nullable=True),
    sa.Column('final_tier', sa.String(length=40), nullable=True),
    sa.Column('final_model', sa.String(length=200), nullable=True),
    sa.Column('final_reason', sa.Text(), nullable=True),
    sa.Column('total_cost', sa.Numeric(precision=20, scale=10), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status in ('queued', 'running', 'done', 'failed')", name='query_status'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    op.create_index('ix_queries_created_at', 'queries', ['created_at'], unique=False)
    op.create_index('ix_queries_live', 'queries', ['status'], unique=False, postgresql_where=sa.text("status in ('queued', 'running')"))
    op.create_table('hops',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('query_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('tier', sa.String(length=40), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('output_tokens', sa.Integer(), nullable=True),
    sa.Column('tokens_estimated', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('cost', sa.Numeric(precision=20, scale=10), server_default='0', nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('score', sa.Numeric(precision=6, scale=3), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('finish_reason', sa.String(length=32), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind in ('route', 'call', 'judge')", name='hop_kind'),
    sa.CheckConstraint("status in ('queued', 'running', 'done', 'failed')", name='hop_status'),
    sa.ForeignKeyConstraint(['query_id'], ['queries.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('query_id', 'seq', name='uq_hops_query_seq')
    )
    op.create_index('ix_hops_kind_tier', 'hops', ['kind', 'tier', 'created_at'], unique=False)
    op.create_index('ix_hops_live', 'hops', ['status', 'created_at'], unique=False, postgresql_where=sa.text("status in ('queued', 'running')"))
    op.create_table('provider_requests',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('hop_id', sa.BigInteger(), nullable=False),
    sa.Column('delivery', sa.Integer(), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('output_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('tokens_estimated', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('input_price_per_mtok', sa.Numeric(precision=20, scale=10), nullable=False),
    sa.Column('output_price_per_mtok', sa.Numeric(precision=20, scale=10), nullable=False),
    sa.Column('cost', sa.Numeric(precision=20, scale=10), server_default='0', nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("outcome in ('ok', 'error', 'superseded')", name='request_outcome'),
    sa.ForeignKeyConstraint(['hop_id'], ['hops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_provider_requests_hop', 'provider_requests', ['hop_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_provider_requests_hop', table_name='provider_requests')
    op.drop_table('provider_requests')
    op.drop_index('ix_hops_live', table_name='hops', postgresql_where=sa.text("status in ('queued', 'running')"))
    op.drop_index('ix_hops_kind_tier', table_name='hops')
    op.drop_table('hops')
    op.drop_index('ix_queries_live', table_name='queries', postgresql_where=sa.text("status in ('queued', 'running')"))
    op.drop_index('ix_queries_created_at', table_name='queries')
    op.drop_table('queries')
