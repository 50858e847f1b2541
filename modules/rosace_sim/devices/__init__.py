"""The simulated devices: plain state machines on the observatory clock (no HTTP here)."""
