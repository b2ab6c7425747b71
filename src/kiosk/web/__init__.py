"""HTTP front end: the FastAPI app factory, auth dependencies, routes and operations endpoints."""
