"""API clients (client id + secret), roles and the bearer tokens they exchange for."""
