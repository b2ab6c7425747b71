"""Storage: SQLAlchemy tables, the engine factory and Alembic migrations.

The database is reached only through this package and the services built on it.
"""

from kiosk.store.engine import Database, create_database
from kiosk.store.migrate import upgrade_to_head

__all__ = ["Database", "create_database", "upgrade_to_head"]
