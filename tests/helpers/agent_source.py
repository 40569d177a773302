# The agent's one source as the CLI embeds it: its parts (agent/*.py), in the order that
# agent/embed.ts lists them in AGENT_PARTS, each under the header embed.ts gives it. Read from
# embed.ts so the order lives in one place; the tests that exec the agent use this.
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def agent_parts():
    """The repo-relative paths of the agent's parts, in their joining order."""
    with open(os.path.join(REPO, "agent", "embed.ts")) as f:
        listing = f.read().split("const AGENT_PARTS", 1)[1].split("];", 1)[0]
    return re.findall(r'\["(agent/\w+\.py)", \w+\]', listing)


def agent_source():
    """The joined source, identical to AGENT_SOURCE (what attach writes before the _peeka_main line)."""
    text = []
    for path in agent_parts():
        with open(os.path.join(REPO, path)) as f:
            text.append("# ---- %s ----\n" % path + f.read())
    return "".join(text)
