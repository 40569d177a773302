"""The condition evaluator's cost per call, two versions side by side: never-matching conditions
through Condition.acceptor (the engine's hot path), interleaved, median of rounds.
Usage: git show <rev>:agent/lib/condition.py > /tmp/old.py
       pythonX.Y bench/condition.py /tmp/old.py agent/lib/condition.py [rounds]"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "helpers"))
from snippet_ctx import FakeAgent  # noqa: E402


def load(path):
    """The file as the agent loads a library: executed, then the libraries it requires bound."""
    ns = {"__name__": "__peeka_lib_condition__"}
    with open(path) as f:
        exec(compile(f.read(), "<peeka-lib:condition>", "exec"), ns)
    agent = FakeAgent()
    ns.update((name, agent.lib(name)) for name in ns.get("REQUIRES", ()))
    return ns


class Order(object):
    def __init__(self, total):
        self.total = total


CASES = [
    # (condition, positions, local_names, args, kwargs)
    ("params[0] > 100", {"x": 0, "y": 1}, None, (5, 7), {}),
    ("params[0] > 100", {"x": 0, "y": 1}, ("x", "y"), (5, 7), {}),
    ("x.total > 50 and kwargs.get('retry') == True", {"x": 0}, None, (Order(10),), {"retry": False}),
    ("len(items) > 3", {"items": 0}, None, ([1, 2],), {}),
    ("len(items) > 3", {"items": 0}, ("items",), ([1, 2],), {}),
    ("name.startswith('adm') and x + 1 > 10", {"name": 0, "x": 1}, None, ("bob", 3), {}),
]


def per_call_ns(accept, call, n):
    t0 = time.perf_counter()
    for _ in range(n):
        accept(*call)
    return (time.perf_counter() - t0) / n * 1e9


def make(mod, case):
    src, positions, local_names, args, kwargs = case
    accept = mod["compile_condition"](src).acceptor(positions, lambda: True, lambda m: False, local_names)
    call = (dict(zip(local_names, args)),) if local_names else (args, kwargs, None)
    assert accept(*call) is False, src
    return accept, call


def main():
    old, new = load(sys.argv[1]), load(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 9
    n = 100000
    print("Python %d.%d" % sys.version_info[:2])
    for case in CASES:
        a_old, c_old = make(old, case)
        a_new, c_new = make(new, case)
        ro, rn = [], []
        for _ in range(rounds):
            ro.append(per_call_ns(a_old, c_old, n))
            rn.append(per_call_ns(a_new, c_new, n))
        mo, mn = sorted(ro)[rounds // 2], sorted(rn)[rounds // 2]
        form = "locals" if case[2] else "call"
        print("  %-48s %-6s old %6.0f ns  new %6.0f ns  ratio %.3f" % (case[0], form, mo, mn, mn / mo))


main()
