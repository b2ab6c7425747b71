"""Pure logic shared by the portal and the emulator: signing, payloads, ... (no IO)."""
