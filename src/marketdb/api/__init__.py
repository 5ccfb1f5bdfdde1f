"""The HTTP API (``marketdb serve``): parse, authorize, format; the services do the work.

``create_app(db)`` builds the FastAPI app; see docs/api.md.
"""

from marketdb.api.app import create_app
from marketdb.api.state import ApiSettings

__all__ = ["ApiSettings", "create_app"]
