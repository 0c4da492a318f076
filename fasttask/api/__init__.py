"""FastAPI application: app factory, authentication and one router per area."""
