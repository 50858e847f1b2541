"""``rosace demo`` command (placeholder)."""


def register(sub):
    p = sub.add_parser("demo", help="run a whole unattended night on the simulated observatory")
    p.set_defaults(func=lambda args: (print("not yet implemented"), 2)[1])
