"""The simulated spectroscopic observatory: a conformant ASCOM Alpaca server."""
