"""``rosace sim``: the simulated observatory's commands (placeholder)."""


def register(sub):
    p = sub.add_parser("sim", help="the simulated spectroscopic observatory (an Alpaca server)")
    p.set_defaults(func=lambda args: (print("not yet implemented"), 2)[1])
