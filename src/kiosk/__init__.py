"""kiosk: a self-hosted developer self-service portal for teams on Azure DevOps."""

__version__ = "0.1.0"
