"""``rosace demo``: a whole night on the simulated observatory, five modules as processes."""
