# Runs inside the target, in peeka's agent: reads os.environ (nothing else).
import os
import re
from fnmatch import fnmatchcase

SECRET = re.compile(r"pass|secret|token|key|auth|cred|private|session|cookie|dsn", re.I)


def run(ctx, args):
    pattern = args.get("pattern") or "*"
    show = bool(args.get("show_secrets"))
    variables = []
    for name, value in sorted(os.environ.items()):
        if not fnmatchcase(name, pattern):
            continue
        masked = not show and bool(SECRET.search(name))
        variables.append({"name": name, "value": "****" if masked else value, "masked": masked})
    return {"variables": variables, "count": len(variables)}
