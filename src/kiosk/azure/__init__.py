"""Talking to Azure DevOps (or kiosk's emulator of it): REST client, service-hook subscriptions and events."""
