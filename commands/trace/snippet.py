# trace: the call tree under a function, with timing. Runs in the agent.
#
# The root function is instrumented by the engine like watch's. When a call of it
# is admitted, a profile function is set on *that thread only* (sys.setprofile) for
# the duration of the call; it builds an aggregated tree (a child called 10 000
# times in a loop is one node with count 10 000) and removes itself when the call
# ends. Other threads, and this thread outside the call, run without it. A thread
# that already has a profile function (cProfile before 3.12, a profiler of the
# user's) is left alone: that call is not traced, and the skip is counted.
#
# Async code. The profile function hears a coroutine frame 'return' each time it suspends
# at an await and 'call' each time the event loop resumes it. A node's frame that suspends
# is set aside (Tree.suspended) and put back when that very frame resumes: an awaited
# coroutine is one call, timed from its start to its completion, and the time it spent
# suspended is its `awaiting`. Own time is running time: total minus awaiting minus the
# running time of the children. An async generator's call is one step (from __anext__ until
# it hands out a value or ends); the awaits inside a step are its awaiting. While the root
# is suspended its stack is empty, and what the loop runs meanwhile (other tasks) is ignored;
# on 3.12+ the profile function is even removed then, so the other tasks do not pay for it:
# the engine reports the root's resume (on_resume), and an exception thrown into a frame of
# the thread (a cancellation reaches the innermost frames of the chain first) puts it back.
# Coroutines the root hands to other tasks (create_task, gather) run in those tasks: they are
# not in the tree, the time the root waits for them is its awaiting.
import os
import sys
import time
import types
import _thread

REQUIRES = ("errors",)

MAX_ACTIVE = 16           # calls traced at once (one per thread); more are skipped and counted
MAX_SUSPENDED = 4096      # node frames set aside at an await per tree; beyond: closed at once
MAX_EXPANDED = 32         # --expand slowest: branches given levels of their own, at most
_now = time.perf_counter_ns
_OPAQUE, _TRANSPARENT = "opaque", "transparent"   # frames that are not nodes (see TraceProbe.kind)
_INLINED = frozenset(("<listcomp>", "<dictcomp>", "<setcomp>"))
_CODE = types.CodeType
_AWAITS = 0x80 | 0x100 | 0x200   # CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
_SUSPENDED, _RETURNED, _RAISED = "suspended", "returned", "raised"   # how a frame left (Tree.how_left)


def _normal_exits():
    """Opcodes a frame leaves through without an exception (return or yield): a profile
    'return' event with arg None elsewhere means the frame is unwinding."""
    import opcode
    names = ("RETURN_VALUE", "RETURN_CONST", "YIELD_VALUE", "YIELD_FROM", "RESUME", "LOAD_CONST", "SEND",
             "RETURN_GENERATOR")
    return frozenset(opcode.opmap[n] for n in names if n in opcode.opmap)


class _Opcodes(object):
    """What f_lasti points at when a frame leaves, per version (see Tree.how_left)."""

    def __init__(self):
        import opcode
        op = opcode.opmap.get
        self.normal_exits = _normal_exits()
        self.returns = frozenset(x for x in (op("RETURN_VALUE"), op("RETURN_CONST")) if x is not None)
        # 3.11+: an await leaves at YIELD_VALUE (3.13: at the RESUME after it). 3.8-3.10: f_lasti is
        # moved back just before YIELD_FROM (to run it again on resume); at YIELD_FROM itself it
        # is an exception thrown in (a cancellation). YIELD_VALUE: a bare yield (types.coroutine).
        self.yields = frozenset(x for x in (op("YIELD_VALUE"), op("RESUME")) if x is not None)
        self.yield_from = op("YIELD_FROM")


class Node(object):
    __slots__ = ("name", "file", "line", "count", "total_ns", "min_ns", "max_ns", "raised", "children",
                 "awaiting_ns", "resumable", "path", "below", "expanded")

    def __init__(self, name, file, line, resumable=False, path=(), below=0, expanded=False):
        self.name, self.file, self.line = name, file, line
        self.path = path            # the keys (codes, C functions) from the root down to this node
        self.below = below          # the depth its children are counted from (0: a new -d below it)
        self.expanded = expanded    # --expand gave it -d levels of its own
        self.count = self.total_ns = self.raised = self.max_ns = self.awaiting_ns = 0
        self.min_ns = 1 << 62
        self.children = {}
        self.resumable = resumable  # a coroutine or async generator: it may leave at an await

    def close(self, d, raised):
        """One call of this node ended after d ns."""
        self.total_ns += d
        if d < self.min_ns:
            self.min_ns = d
        if d > self.max_ns:
            self.max_ns = d
        self.raised += bool(raised)

    def running_ns(self):
        """Total time minus the time spent suspended at awaits."""
        return self.total_ns - self.awaiting_ns


class Tree(object):
    """One traced call on one thread: the stack of frames inside it and the nodes so far.
    Stack entries are tuples (frame, parent, start, node, depth), always unpacked by these
    names (cheaper than any record on this path, which runs twice per inner call): the frame or
    C function; the node its children attach to (None: ignore what is under it); the start in
    ns; the node this entry times, or None; the depth of recorded nodes."""

    def __init__(self, probe, root, root_frame, root_code):
        self.probe, self.root = probe, root
        self.root_frame, self.root_code = root_frame, root_code
        self.stack = [(root_frame, root, 0, None, 0)] if root_frame is not None else []
        self.suspended = {}         # frame -> (its stack entry, when it suspended): nodes at an await
        self.root_left = None       # when the root's frame last left: a suspension, unless its end
        self.nodes, self.cut, self.done = 1, 0, False
        self.tid = _thread.get_ident()
        self.hook = self._make_hook()

    def _make_hook(self):
        """The profile function. A closure over locals: it runs twice per call under the root,
        so every lookup saved counts (the common paths are written out inline)."""
        tree, stack, suspended, probe = self, self.stack, self.suspended, self.probe
        kinds, classify, max_depth, skip_c, now = probe.kinds, probe.kind, probe.depth, probe.skip_builtin, _now
        hands_off = probe.on_resume is not None   # off while the root is suspended (3.12+)
        listen_throws = probe.listen_throws

        def hook(frame, event, arg):
            t = now()
            if tree.done:
                # The call ended on another thread, or the trace stopped: leave this thread as it was.
                if sys.getprofile() is hook:
                    sys.setprofile(None)
                return
            if event == "call":
                if suspended:
                    held = suspended.pop(frame, None)
                    if held is not None:    # a node's coroutine resumed: the same call goes on
                        entry, since = held
                        entry[3].awaiting_ns += t - since
                        stack.append(entry)
                        return
                if not stack:
                    tree.wait_for_root(frame, t)
                    return
                _, parent, _, _, depth = stack[-1]
                if parent is None:
                    stack.append((frame, None, 0, None, depth))
                    return
                code = frame.f_code
                kind = kinds.get(code) or classify(code)
                if kind is _TRANSPARENT:
                    stack.append((frame, parent, 0, None, depth))
                elif kind is _OPAQUE or depth >= max_depth:
                    stack.append((frame, None, 0, None, depth))
                else:
                    node = parent.children.get(code) or tree.new_child(parent, code, kind, depth)
                    if node is None:
                        stack.append((frame, None, 0, None, depth))
                    else:
                        node.count += 1
                        stack.append((frame, node, t, node, node.below))
            elif event == "return":
                if not stack:
                    return          # the root is suspended: another task's frame
                entry = stack[-1]
                if entry[0] is not frame:
                    tree.pop(frame, t, arg is None and tree.unwinding(frame))
                    return
                stack.pop()
                _, _, start, node, _ = entry
                if node is None:
                    if frame is tree.root_frame:
                        tree.root_left = t
                        if hands_off:
                            sys.setprofile(None)
                            listen_throws(tree.rearm)
                    return
                if node.resumable:
                    how = tree.how_left(frame, arg)
                    if how is _SUSPENDED:
                        tree.suspend(entry, t)
                        return
                    raised = how is _RAISED
                else:
                    raised = arg is None and tree.unwinding(frame)
                d = t - start
                node.total_ns += d
                if d < node.min_ns:
                    node.min_ns = d
                if d > node.max_ns:
                    node.max_ns = d
                if raised:
                    node.raised += 1
            elif skip_c:
                return              # C functions: their time stays in their caller's own time
            elif event == "c_call":
                if not stack:
                    return
                _, parent, _, _, depth = stack[-1]
                node = None
                if parent is not None and depth < max_depth:
                    node = parent.children.get(arg) or tree.new_child(parent, arg, None, depth)
                if node is None:
                    stack.append((arg, None, 0, None, depth))
                else:
                    node.count += 1
                    stack.append((arg, node, t, node, node.below))
            else:                   # c_return, c_exception
                tree.pop(arg, t, event == "c_exception")
        return hook

    def wait_for_root(self, frame, t):
        """Before the root's own frame starts (3.8-3.11: the engine's trampoline runs first), or
        while a coroutine root is suspended, events are ignored until the root frame runs."""
        if frame is self.root_frame or (self.root_frame is None and frame.f_code is self.root_code):
            if self.root_left is not None:  # resumed: it was suspended since it left
                self.root.awaiting_ns += t - self.root_left
                self.root_left = None
            self.root_frame = frame
            self.stack.append((frame, self.root, 0, None, 0))

    def rearm(self):
        """3.12+, the root suspended: an exception is thrown into a frame of this thread, maybe
        one of the root's chain (they see it before the root resumes): the profile function is
        put back (its events from other tasks are ignored as usual)."""
        self.probe.listen_throws(None)
        if not self.done and sys.getprofile() is None and _thread.get_ident() == self.tid:
            sys.setprofile(self.hook)

    def how_left(self, frame, arg):
        """A coroutine's or async generator's frame left: _SUSPENDED at an await, _RETURNED (an
        async generator's step also ends when it hands out a value, wrapped by CPython), or
        _RAISED."""
        if arg is not None and type(arg).__name__ == "async_generator_wrapped_value":
            return _RETURNED
        ops, i = self.code_ops(frame), frame.f_lasti
        op = ops[i] if 0 <= i < len(ops) else None
        codes = self.probe.opcodes
        after = codes.yield_from is not None and i + 2 < len(ops) and ops[i + 2] == codes.yield_from
        if op in codes.yields or (after and op != codes.yield_from):
            return _SUSPENDED
        return _RETURNED if op in codes.returns or arg is not None else _RAISED

    def suspend(self, entry, t):
        """A node's frame suspended at an await: set aside until that frame resumes."""
        if len(self.suspended) < MAX_SUSPENDED:
            self.suspended[entry[0]] = (entry, t)
        else:
            entry[3].close(t - entry[2], False)

    def close_suspended(self):
        """The root ended: a node still suspended (abandoned, or a frame whose end looked like
        an await) is closed as of the moment it left."""
        for entry, since in self.suspended.values():
            entry[3].close(since - entry[2], False)
        self.suspended.clear()

    def unwinding(self, frame):
        """A 'return' event with None: a real return, or an exception leaving the frame?"""
        ops, i = self.code_ops(frame), frame.f_lasti
        return 0 <= i < len(ops) and ops[i] not in self.probe.opcodes.normal_exits

    def code_ops(self, frame):
        code = frame.f_code
        ops = self.probe.code_bytes.get(code)
        if ops is None:
            ops = self.probe.code_bytes[code] = code.co_code   # a new copy per read on 3.12+
        return ops

    def new_child(self, parent, key, kind, depth):
        """A node first met under `parent` (at `depth`): its children are counted from depth + 1,
        or from 0 when --expand names it (outermost occurrence of its code on the path) or its
        path is one 'slowest' armed."""
        probe = self.probe
        if self.nodes >= probe.max_nodes:
            self.cut += 1
            return None
        name, file, line = kind if kind is not None else probe.c_name(key)
        resumable = type(key) is _CODE and bool(key.co_flags & _AWAITS)
        path = parent.path + (key,)
        expanded = path in probe.expanded_paths or (key in probe.expand_codes and key not in parent.path)
        node = parent.children[key] = Node(name, file, line, resumable, path, 0 if expanded else depth + 1, expanded)
        self.nodes += 1
        return node

    def pop(self, what, t, raised):
        """A return that is not of the innermost entry (events missed): unwind to it if it is here."""
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is what:
                del stack[i + 1:]
                break
        else:
            return
        _, _, start, node, _ = stack.pop()
        if node is not None:
            node.close(t - start, raised)


class TraceProbe(object):
    """Trace's own callbacks; run() combines it with the observe library's StreamingProbe
    (rate limit, queue, drops, -n, pausing), which a library can only give at run time."""
    QUEUE_MAX = 1000                  # trees waiting to be sent; beyond: dropped and counted
    DROPPED_EVENT = "trace_dropped"

    def __init__(self, lib, observation, opts):
        super(TraceProbe, self).__init__(observation.cond, opts.get("times", -1), opts.get("rate", 50),
                                         observation.id)
        self.ser, self.thread_name = lib("serialize"), lib("observe").thread_name
        self.code_name = lib("threads").code_name
        cond = self.cond
        self.depth = max(1, int(opts.get("depth") or 3))
        self.max_nodes = max(2, int(opts.get("max_nodes") or 1000))
        self.min_ns = int(float(opts.get("min_duration") or 0) * 1e6)
        self.skip_builtin = bool(opts.get("skip_builtin", True))
        # A condition that reads what only the exit knows (cost, result, exception) is checked
        # after the call; any other is checked before tracing starts.
        self.cond_names_at_exit = lib("observe").reads_exit(cond)
        self.active = True
        self.opcodes = _Opcodes()
        self.stdlib = self._stdlib_dirs()
        self.kinds = {}             # code -> (name, file, line) or _OPAQUE / _TRANSPARENT
        self.code_bytes = {}        # code -> co_code, for unwinding()
        self.trees = {}             # thread id -> Tree in progress
        self.busy_skipped = 0
        self.overlap_skipped = 0    # calls that began on a thread while its traced call was suspended
        self.task_name = lib("observe").task_name
        self.percent = bool(opts.get("percent", True))
        # --expand: functions whose node gets -d levels of its own, or "slowest": after each
        # tree, the bottom of its slowest branch (at the depth limit) is armed for the next ones.
        expand = opts.get("expand") or ""
        self.expand_slowest = expand == "slowest"
        self.expand_codes = frozenset() if self.expand_slowest else _expand_codes(lib("instrument"), expand)
        self.expanded_paths = frozenset()
        self.listen_throws = lib("instrument").listen_throws
        if not lib("instrument").RESUME_EVENTS:
            self.on_resume = None   # the engine cannot tell: the hook stays on while the root is suspended
        self.warm_up()
        self.classify_callees(observation.targets)

    # -- engine callbacks (target threads) ---------------------------------
    def admit(self):
        if self.reached():
            return False
        # Several threads may each be inside a call we trace (one tree each); a nested call of
        # the root on a thread that is already traced is part of that tree. On an event loop,
        # one call is traced at a time: a call another task begins while ours is suspended
        # (its stack is empty then) is skipped and counted.
        tree = self.trees.get(_thread.get_ident())
        if tree is not None:
            if not tree.stack:
                self.overlap_skipped += 1
            return False
        if self.cond is None and not self.take_token():
            return False
        return True

    def on_enter(self, call):
        tid = _thread.get_ident()
        if self.cond is not None and not self.cond_names_at_exit:
            if not self.matches(call, None, None, None):
                return False
            if not self.take_token():
                return False
        if not self.active:
            return False
        if sys.getprofile() is not None or len(self.trees) >= MAX_ACTIVE:
            self.busy_skipped += 1  # someone else's profiler runs on this thread: leave it alone
            return False
        code = call.target.code
        root = Node(call.name, code.co_filename, code.co_firstlineno, path=(code,))
        root.count = 1
        # 3.12+: the engine calls us from the root's own frame; 3.8-3.11: from its trampoline,
        # and the root frame is the next one of the root's code to start.
        root_frame = call.frame if call.frame is not None and call.frame.f_code is code else None
        tree = Tree(self, root, root_frame, code)
        call.state["tree"] = tree
        self.trees[tid] = tree
        tree.done = not self.active  # stopped meanwhile: the hook removes itself at once
        sys.setprofile(tree.hook)
        return True

    def on_resume(self, call):
        """3.12+: the root's frame resumes. Its profile function was removed when it suspended
        (and CPython does not report this resume to one set now): the root is put back on the
        stack here, then the profile function."""
        tree = call.state.get("tree")
        if tree is None or tree.done or tree.tid != _thread.get_ident():
            return
        self.listen_throws(None)
        if sys.getprofile() is not None:
            return                  # on: it sees the resume itself (or another profiler is there)
        if not tree.stack:
            tree.wait_for_root(call.frame, _now())
        sys.setprofile(tree.hook)

    def on_exit(self, call, result, exc, duration_ns):
        tree = call.state.get("tree")
        if tree is None:
            return
        tree.done = True
        if sys.getprofile() is tree.hook:
            sys.setprofile(None)    # else it removes itself at its thread's next event
        self.listen_throws(None)
        self.trees.pop(tree.tid, None)
        if self.cond is not None and self.cond_names_at_exit and not self.matches(call, result, exc, duration_ns):
            return
        if self.cond is not None and self.cond_names_at_exit and not self.take_token():
            return
        if self.room():
            self.publish(self.observation(call, tree, result, exc, duration_ns))

    def warm_up(self):
        """A dry run of the profile function on this (the agent's) thread: the events of a call
        of a function of ours named like a user's, handed to it directly (no profile function is
        set here, and no root returns: that would hand this thread off to listen_throws). The
        one-time costs of a first traced call are paid here: mapping files to loaded modules (a
        scan of sys.modules, ~1 ms in a big app), the first runs of the hook, of naming a code
        and of making a node. Nothing is kept: the probe is not installed yet."""
        namespace = {"_getframe": sys._getframe}
        exec(compile(_WARM_UP_SOURCE, "peeka-trace-warm-up.py", "exec"), namespace)
        root, leaf = namespace["root"](), namespace["leaf"]()
        tree = Tree(self, Node("warm-up", None, None), root, root.f_code)
        for _ in range(2):          # not the root's return: that one would hand the thread off
            tree.hook(leaf, "call", None)
            tree.hook(leaf, "return", 1)
        tree.done = True
        self.kinds.clear()
        self.code_bytes.clear()

    def classify_callees(self, targets):
        """The functions a root calls by a global name are classified now, so that its first
        call does not pay for naming them (the module's dict is read: no code of the target runs)."""
        for target in targets:
            scope = target.func.__globals__
            for name in target.code.co_names:
                value = dict.get(scope, name)    # never a subclass's get or __missing__
                if type(value) is types.FunctionType:
                    self.kind(value.__code__)

    # -- what a frame is --------------------------------------------------------
    def kind(self, code):
        """(name, file, line) for a node, or _OPAQUE (peeka's own code: nothing under it is
        shown) or _TRANSPARENT (the engine's trampoline, and with --skip-builtin the standard
        library: not shown, what they call is). Cached per code object."""
        k = self.kinds.get(code)
        if k is None:
            k = self.kinds[code] = self._classify(code)
        return k

    def _classify(self, code):
        file = code.co_filename
        if file.startswith("<peeka"):
            return _OPAQUE
        consts = code.co_consts
        if consts and type(consts[-1]) is tuple and len(consts[-1]) == 2 and consts[-1][0] == "__peeka_trampoline__":
            return _TRANSPARENT
        if self.skip_builtin and (file.startswith("<") or self._in_stdlib(file)):
            return _TRANSPARENT
        if code.co_name in _INLINED:
            return _TRANSPARENT      # comprehensions: their own frame before 3.12, inlined since
        return (self.code_name(code), file, code.co_firstlineno)

    @staticmethod
    def _stdlib_dirs():
        os_file = getattr(os, "__file__", None)
        return (os.path.dirname(os_file) + os.sep,) if os_file else ()

    def _in_stdlib(self, file):
        for d in self.stdlib:
            if file.startswith(d):
                rest = file[len(d):]
                return not (rest.startswith("site-packages") or rest.startswith("dist-packages"))
        return False

    @staticmethod
    def c_name(func):
        qual = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
        owner = getattr(func, "__self__", None)
        module = getattr(func, "__module__", None)
        if module is None and owner is not None and not isinstance(owner, type(sys)):
            module = type(owner).__module__
        elif module is None and isinstance(owner, type(sys)):
            module = owner.__name__
        return ("%s.%s" % (module, qual) if module and module != "builtins" else qual), None, None

    # -- the observation ---------------------------------------------------------
    def observation(self, call, tree, result, exc, duration_ns):
        tree.close_suspended()
        root = tree.root
        root.total_ns = duration_ns
        root.min_ns = root.max_ns = duration_ns
        root.raised = 1 if exc is not None else 0
        shown = [0]
        children = self.render_children(root, shown, duration_ns)
        armed = self.arm_slowest(root) if self.expand_slowest else None
        obs = {
            "type": "observation", "watch_id": self.watch_id, "timestamp": call.wall_time,
            "location": "AtExit" if exc is None else "AtExceptionExit",
            "func_name": call.name, "file": root.file, "line": root.line,
            "args": self.ser.to_json(list(call.args), depth=2), "kwargs": self.ser.to_json(call.kwargs, depth=2),
            "success": exc is None, "exception": self.ser.exception_info(exc) if exc is not None else None,
            "duration_ms": _ms(duration_ns), "total_duration_ms": _ms(duration_ns),
            "self_time_ms": _ms(_own_ns(root)), "awaiting_ms": _ms(root.awaiting_ns), "count": None,
            "call_tree": children, "node_count": tree.nodes, "nodes_shown": shown[0] + 1,
            "nodes_cut": tree.cut, "depth": self.depth, "expand_next": armed,
            "thread": {"id": tree.tid, "name": self.thread_name(tree.tid)},
        }
        if call.target.kind in ("coroutine", "async_generator"):
            obs["task"] = self.task_name()
        return obs

    def render_children(self, node, shown, root_ns):
        """Children in the order they were first called, pruned below --min-duration; the
        slowest of several is marked (following the marks leads down the slowest branch);
        `percent`: a node's total time as a share of the root's."""
        kids = self.shown_children(node)
        slowest = max(kids, key=lambda n: n.total_ns) if len(kids) > 1 else None
        out = []
        for n in kids:
            shown[0] += 1
            grand = self.render_children(n, shown, root_ns)
            item = {"function": n.name, "filename": n.file, "lineno": n.line, "count": n.count,
                    "total_ms": _ms(n.total_ns), "self_ms": _ms(_own_ns(n)), "awaiting_ms": _ms(n.awaiting_ns),
                    "min_ms": _ms(n.min_ns), "max_ms": _ms(n.max_ns), "raised": n.raised,
                    "slowest": n is slowest, "children": grand}
            if self.percent:
                item["percent"] = round(100.0 * n.total_ns / root_ns, 1) if root_ns > 0 else 0.0
            if n.expanded:
                item["expanded"] = True
            out.append(item)
        return out

    def shown_children(self, node):
        return [n for n in node.children.values() if n.total_ns >= self.min_ns]

    def arm_slowest(self, root):
        """--expand slowest: follows the slowest child down from the root; a Python function at
        the bottom whose children the depth limit cut gets -d levels of its own in the next
        trees (at most MAX_EXPANDED paths). Returns its name, or None."""
        node = root
        while True:
            kids = self.shown_children(node)
            if not kids:
                break
            node = max(kids, key=lambda n: n.total_ns)
        path = node.path
        if (node is root or node.below < self.depth or path in self.expanded_paths
                or len(self.expanded_paths) >= MAX_EXPANDED or not all(type(k) is _CODE for k in path)):
            return None
        self.expanded_paths = self.expanded_paths | frozenset((path,))   # one swap: other threads read it
        return node.name

    # -- what Observation asks ------------------------------------------------------
    def drops(self):
        return {"rate_dropped": self.rate_dropped, "queue_dropped": self.queue_dropped,
                "busy_skipped": self.busy_skipped, "overlap_skipped": self.overlap_skipped,
                "condition_errors": self.condition_errors,
                "condition_error": self.condition_error}

    def started_data(self, observation):
        return {"watch_id": observation.id, "trace_id": observation.id, "pattern": observation.pattern,
                "functions": observation.functions, "condition": observation.condition, "depth": self.depth,
                "expand": "slowest" if self.expand_slowest else [self.code_name(c) for c in self.expand_codes]}

    def on_stop(self):
        self.active = False
        for tree in list(self.trees.values()):
            tree.done = True        # profile functions still set on a thread remove themselves

    def summary(self, observation):
        return dict(self.drops(), watch_id=observation.id, pattern=observation.pattern, observations=self.count,
                    calls=observation.calls, probe_errors=self.errors, seconds=observation.seconds(),
                    reason=self.stop_reason())


def _expand_codes(instrument, expand):
    """The codes of the functions --expand names (comma-separated patterns)."""
    codes = set()
    for pattern in (p.strip() for p in expand.split(",")):
        if pattern:
            try:
                codes.update(t.code for t in instrument.resolve_for_command(pattern))
            except errors.CommandError as e:
                raise errors.CommandError("--expand: %s" % e, code=e.code)
    return frozenset(codes)


def _ms(ns):
    return None if ns is None else round(ns / 1e6, 6)


def _own_ns(node):
    """Running time not spent in the children: total minus awaiting minus what the children ran."""
    return max(0, node.running_ns() - sum(c.running_ns() for c in node.children.values()))


_WARM_UP_SOURCE = """
def leaf():
    return _getframe()


def root():
    return _getframe()
"""


def run(ctx, args):
    observe = ctx.agent.lib("observe")
    observation = observe.Observation(ctx, "trace", args)

    class Probe(TraceProbe, observe.StreamingProbe):
        pass

    return observation.run(Probe(ctx.agent.lib, observation, args))
