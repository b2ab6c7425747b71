"""The tables kiosk keeps, as SQLAlchemy Core metadata.

Core (not the ORM) because the hot paths are bulk ``executemany`` statements; there is no
object graph worth mapping. Migrations in ``migrations/versions`` must match this file; the
test ``tests/store/test_migrations.py`` checks they do on both engines.
"""

from __future__ import annotations

import sqlalchemy as sa

from kiosk.store.columns import JSONDoc, Timestamp, authored_columns

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

blueprints = sa.Table(
    "blueprints",
    metadata,
    sa.Column("identifier", sa.String(100), primary_key=True),
    # The whole Port blueprint document, normalised; identifier/title duplicated for listing.
    sa.Column("definition", JSONDoc, nullable=False),
    *authored_columns(),
)

entities = sa.Table(
    "entities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "blueprint",
        sa.String(100),
        sa.ForeignKey("blueprints.identifier", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("identifier", sa.String(1000), nullable=False),
    sa.Column("title", sa.String(1000), nullable=True),
    sa.Column("icon", sa.String(200), nullable=True),
    sa.Column("team", JSONDoc, nullable=False),
    sa.Column("properties", JSONDoc, nullable=False),
    *authored_columns(),
    # The only index besides the primary key: every extra index costs bulk writes, and titles of
    # up to 1000 characters would not fit a PostgreSQL B-tree entry anyway. Properties that need
    # an index ask for one (x-kiosk-index, see kiosk.catalog.indexes).
    sa.UniqueConstraint("blueprint", "identifier"),
)

# One row per relation edge; the single source of truth for relations (entity rows do not
# repeat them). target_id cascades so deleting an entity drops the edges pointing at it.
entity_relations = sa.Table(
    "entity_relations",
    metadata,
    sa.Column("entity_id", sa.Integer, sa.ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("relation", sa.String(100), nullable=False),
    sa.Column("target_id", sa.Integer, sa.ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False, default=0),
    sa.PrimaryKeyConstraint("entity_id", "relation", "target_id"),
    sa.Index("ix_entity_relations_target_id", "target_id"),
)

clients = sa.Table(
    "clients",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    # sha256 of a 256-bit random secret: a slow KDF buys nothing against a secret that random,
    # and the token route stays fast.
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    # Set once when the client is revoked (migration 0004): its secret gets no token and the tokens
    # it holds are refused from then on. The row stays, so the audit trail keeps a name for the id.
    sa.Column("revoked_at", Timestamp, nullable=True),
)

# Small server-wide values (the check value of the master key, ...; never key material).
server_state = sa.Table(
    "server_state",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# ------------------------------------------------------------------------------------------------
# Self-service actions and their runs (migration 0002).

actions = sa.Table(
    "actions",
    metadata,
    sa.Column("identifier", sa.String(100), primary_key=True),
    # The whole Port action document (trigger, invocationMethod, requiredApproval, ...).
    sa.Column("definition", JSONDoc, nullable=False),
    *authored_columns(),
)

# No foreign key to actions: a run is history and outlives the action that started it.
action_runs = sa.Table(
    "action_runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # r_<hex>, also the delivery's idempotency key
    sa.Column("action", sa.String(100), nullable=False),
    # IN_PROGRESS | WAITING_FOR_APPROVAL | SUCCESS | FAILURE | DECLINED
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("status_label", sa.String(1000), nullable=True),
    sa.Column("blueprint", sa.String(100), nullable=True),
    sa.Column("entity", sa.String(1000), nullable=True),
    # The inputs as validated, with secret inputs replaced by a marker; their values live only
    # encrypted in ``secrets`` (see kiosk.actions), never in clear.
    sa.Column("properties", JSONDoc, nullable=False),
    sa.Column("secrets", sa.Text, nullable=True),
    sa.Column("links", JSONDoc, nullable=False),
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("external_run_id", sa.String(500), nullable=True),
    sa.Column("origin", sa.String(20), nullable=False),  # UI | API | AUTOMATION
    sa.Column("created_by", sa.String(200), nullable=True),
    # {required, decision: APPROVED|DECLINED, decidedBy, decidedAt, reason}
    sa.Column("approval", JSONDoc, nullable=True),
    # The run name the triggered pipeline sets (``kiosk-<run id>``), matched by run-state events.
    sa.Column("pipeline_run_name", sa.String(255), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("ended_at", Timestamp, nullable=True),
    sa.Index("ix_action_runs_status_created_at", "status", "created_at"),
    sa.Index("ix_action_runs_action_created_at", "action", "created_at"),
    sa.Index("ix_action_runs_pipeline_run_name", "pipeline_run_name"),
)

action_run_logs = sa.Table(
    "action_run_logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("action_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("termination_status", sa.String(30), nullable=True),
    sa.Column("status_label", sa.String(1000), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_action_run_logs_run_id_id", "run_id", "id"),
)

# ------------------------------------------------------------------------------------------------
# The durable job queue (migration 0002): one table for every kind of work that must not be lost
# (outbound deliveries now; inbound events and resyncs later). Claimed with FOR UPDATE SKIP LOCKED
# on PostgreSQL so several kiosk processes share it; a lease (locked_until) returns the job of a
# crashed worker to the queue.

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("payload", JSONDoc, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # pending | running | done | dead
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("run_after", Timestamp, nullable=False),
    sa.Column("locked_by", sa.String(100), nullable=True),
    sa.Column("locked_until", Timestamp, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    # Set by producers that must not enqueue the same work twice (a redelivered inbound event).
    sa.Column("dedupe_key", sa.String(300), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.UniqueConstraint("kind", "dedupe_key"),
    sa.Index("ix_jobs_status_run_after", "status", "run_after"),
)

# One outbound webhook: what to send (the body bytes exactly as signed) and where. Signing secrets
# are not stored: ``target.signing`` names where the secret is configured, resolved at send time.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # msg_<hex>: the webhook-id receivers dedupe on
    sa.Column("run_id", sa.String(40), nullable=True),
    sa.Column("source", sa.String(50), nullable=False),  # action | automation | ...
    sa.Column("target", JSONDoc, nullable=False),  # {method, url, headers, signing}
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # pending | delivered | failed | dead
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", Timestamp, nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("delivered_at", Timestamp, nullable=True),
    sa.Index("ix_deliveries_run_id", "run_id"),
    sa.Index("ix_deliveries_status_created_at", "status", "created_at"),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(40), sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),  # capped (20,000 characters, as Svix)
    sa.Column("worker", sa.String(100), nullable=True),
    sa.Index("ix_delivery_attempts_delivery_id_id", "delivery_id", "id"),
)

# ------------------------------------------------------------------------------------------------
# Inbound webhook receivers and the watches they refresh (migration 0003).

# One row per request that reached a known receiver: accepted events with the watches they matched
# (stored before the reply, in the same transaction as their job), duplicates, pings, and
# rejections (without their body). ``project`` is "" for a receiver without one, so (project,
# receiver) is a plain equality for the listing index.
receiver_events = sa.Table(
    "receiver_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("receiver", sa.String(100), nullable=False),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("received_at", Timestamp, nullable=False),
    sa.Column("sender", sa.String(30), nullable=True),  # acr | azure-devops | generic
    sa.Column("event_type", sa.String(200), nullable=True),
    sa.Column("delivery_id", sa.String(200), nullable=True),  # the sender's id, which a redelivery repeats
    sa.Column("outcome", sa.String(20), nullable=False),  # refreshed | no_match | duplicate | ping | rejected
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("refreshed", sa.Integer, nullable=False),
    sa.Column("matches", JSONDoc, nullable=False),  # [{watch, kind, repository, tag, ref, change, commit}]
    sa.Column("summary", JSONDoc, nullable=True),  # {repository, tag | refs, ...}
    sa.Column("payload", JSONDoc, nullable=True),  # the body as received (never for rejections)
    sa.Column("processing", sa.String(20), nullable=True),  # pending | done | failed; null: nothing to do
    sa.Column("processed_at", Timestamp, nullable=True),
    sa.Index("ix_receiver_events_project_receiver_id", "project", "receiver", "id"),
)

# What each reaction of a refreshed watch did for one event. Also the record that makes the event
# processor idempotent: a reaction with a row here is not fired again when a job is retried.
receiver_event_reactions = sa.Table(
    "receiver_event_reactions",
    metadata,
    sa.Column("event_id", sa.Integer, sa.ForeignKey("receiver_events.id", ondelete="CASCADE"), nullable=False),
    sa.Column("watch", sa.String(100), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # runAction | upsertEntity
    sa.Column("status", sa.String(20), nullable=False),  # done | failed
    sa.Column("run_id", sa.String(40), nullable=True),
    sa.Column("entity", sa.String(1200), nullable=True),  # blueprint/identifier
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.PrimaryKeyConstraint("event_id", "watch", "position"),
)

# Watches live in kiosk.yaml; their refresh history lives here. No foreign key to events: events
# may be pruned, a watch's last refresh stays known.
watch_states = sa.Table(
    "watch_states",
    metadata,
    sa.Column("watch", sa.String(100), primary_key=True),
    sa.Column("last_refreshed_at", Timestamp, nullable=False),
    sa.Column("last_event_id", sa.Integer, nullable=True),
    sa.Column("refreshes", sa.Integer, nullable=False),
)

# ------------------------------------------------------------------------------------------------
# The Azure DevOps integration (migration 0005).

# Which integration and organisation wrote an entity (Port's ``$datasource``), one row per writer:
# an entity two organisations (or two integrations) produce has two rows. The delete phase of a
# resync only ever considers entities with a row of its own datasource, and removes only that row
# when another one remains. Rows go with their entity (cascade), whoever deletes it.
entity_datasources = sa.Table(
    "entity_datasources",
    metadata,
    sa.Column("datasource", sa.String(1000), nullable=False),
    sa.Column("entity_id", sa.Integer, sa.ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    sa.PrimaryKeyConstraint("datasource", "entity_id"),
    # For the cascade when an entity is deleted, and for "who else wrote this one".
    sa.Index("ix_entity_datasources_entity_id", "entity_id"),
)

# One integration's latest resync, as kiosk.ingest.state.ResyncState.to_json() gives it.
integration_state = sa.Table(
    "integration_state",
    metadata,
    sa.Column("integration", sa.String(100), primary_key=True),
    sa.Column("state", JSONDoc, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# The first raw items of each kind (sendRawDataExamples), for test-mapping.
integration_examples = sa.Table(
    "integration_examples",
    metadata,
    sa.Column("integration", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(100), nullable=False),
    sa.Column("examples", JSONDoc, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.PrimaryKeyConstraint("integration", "kind"),
)

# A mapping replaced through the API; it takes precedence over kiosk.yaml's until cleared.
integration_mappings = sa.Table(
    "integration_mappings",
    metadata,
    sa.Column("integration", sa.String(100), primary_key=True),
    sa.Column("mapping", JSONDoc, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=True),
)

# ------------------------------------------------------------------------------------------------
# What a resync last made of each item it can prove unchanged (migration 0006).

# One row per (datasource, resource, item): the item's version as the fetcher proves it cheaply
# (a work item's revision…), and the entities the resource made of it, each with what the catalog
# held right after (row id, updated_at, edge count), so an entity someone else wrote since is
# noticed. ``resource`` is a hash of the resource's mapping: a changed mapping matches no row.
ingest_item_marks = sa.Table(
    "ingest_item_marks",
    metadata,
    sa.Column("datasource", sa.String(1000), nullable=False),
    sa.Column("resource", sa.String(64), nullable=False),
    sa.Column("item", sa.String(400), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("entities", JSONDoc, nullable=False),
    sa.PrimaryKeyConstraint("datasource", "resource", "item"),
)


# When the last complete read of a resource (named as in ingest_item_marks) began, by Azure's
# clock (migration 0008): its marks are exact as of then, so the next resync asks Azure only for
# the items changed since (work items) and holds the others as marked.
ingest_resource_reads = sa.Table(
    "ingest_resource_reads",
    metadata,
    sa.Column("datasource", sa.String(1000), nullable=False),
    sa.Column("resource", sa.String(64), nullable=False),
    sa.Column("began_at", Timestamp, nullable=False),
    sa.PrimaryKeyConstraint("datasource", "resource"),
)

# ------------------------------------------------------------------------------------------------
# An integration's service-hook subscriptions (migration 0007).

# Per integration and organisation, a salted fingerprint of the consumer inputs (URL, basic auth)
# last applied to its subscriptions: Azure masks the password, so a changed webhookSecret is found
# by comparing fingerprints (kiosk.ingest.hooks.fingerprint), never by keeping the secret.
integration_hooks = sa.Table(
    "integration_hooks",
    metadata,
    sa.Column("integration", sa.String(100), nullable=False),
    sa.Column("organization", sa.String(500), nullable=False),
    sa.Column("fingerprint", sa.String(200), nullable=False),
    sa.Column("applied_at", Timestamp, nullable=False),
    sa.PrimaryKeyConstraint("integration", "organization"),
)

# ------------------------------------------------------------------------------------------------
# People who sign in to the portal, and their sessions (migration 0009).

# A person: a local user (``password_hash``, argon2) or one known from an OIDC provider
# (``oidc_subject``). The email is the identifier of their ``_user`` entity, as in Port.
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # u_<hex>
    sa.Column("email", sa.String(320), nullable=False, unique=True),  # lower-cased
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=True),
    sa.Column("oidc_subject", sa.String(255), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_sign_in_at", Timestamp, nullable=True),
)

# A browser session: the cookie holds a 256-bit random id, the table only its SHA-256, so reading
# the database is not enough to take over a session. ``csrf_token`` is the per-session token every
# state-changing form carries.
user_sessions = sa.Table(
    "user_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_seen_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),  # the absolute end, whatever the activity
    sa.Index("ix_user_sessions_user_id", "user_id"),
    sa.Index("ix_user_sessions_expires_at", "expires_at"),
)
