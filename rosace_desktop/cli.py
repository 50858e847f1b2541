"""``rosace desktop`` command (placeholder)."""


def register(sub):
    p = sub.add_parser("desktop", help="open the desktop program (one tab per module)")
    p.set_defaults(func=lambda args: (print("not yet implemented"), 2)[1])
