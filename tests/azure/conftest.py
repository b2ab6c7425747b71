"""The Azure DevOps client tests run against kiosk's emulator (the same fixture as the emulator's tests)."""

from tests.emulator.conftest import start_emulator

__all__ = ["start_emulator"]
