# Code objects as data: the lines a code object has instructions for, and the code defined
# inside it. Read from the code's own tables only (nothing imported, no target code run).
import types

REQUIRES = ()

MAX_NESTED = 10000      # a bound for generated code with absurd nesting


def own_lines(code):
    """The line numbers that start an instruction of `code` (its own, not nested code's)."""
    if hasattr(code, "co_lines"):                       # 3.10+
        return set(line for _, _, line in code.co_lines() if line is not None)
    lines, tab = set(), code.co_lnotab       # 3.8-3.9: (byte step, line step) pairs
    line, last = code.co_firstlineno, None
    for i in range(0, len(tab), 2):
        if tab[i] and line != last:          # a line with no instruction is stepped over
            lines.add(line)
            last = line
        step = tab[i + 1]
        line += step - 256 if step >= 128 else step
    lines.add(line)
    return lines


def nested(code):
    """`code` and every code object defined inside it (functions, lambdas, comprehensions)."""
    out, todo = [], [code]
    while todo and len(out) < MAX_NESTED:
        c = todo.pop()
        out.append(c)
        todo.extend(k for k in c.co_consts if type(k) is types.CodeType)
    return out


def has_line(code, line):
    """Whether `line` starts an instruction of `code` or of code nested in it."""
    return any(line in own_lines(c) for c in nested(code))
