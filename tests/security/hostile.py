"""Hostile names shared by the security tests and the fuzz harness: each one tries to end the
string, comment, cell, row, tag or line it is written into, or to drive the terminal."""

# code that, if it ever runs, creates the file named by $MARK (no '/' in it: names cannot hold one)
RUN = "__import__('os').open(__import__('os').environ['MARK'], 65)"

NAMES = [
    f'x"""\n{RUN}\n"""',                   # ends a docstring, a statement, reopens it
    f"c\n        {RUN}",                   # a newline and an indented statement
    f"r\r    {RUN}",                       # CR: a line break for Python's tokenizer
    f"q'''\n{RUN}#",                      # the other docstring quote
    "back\\",                              # a trailing backslash escapes the closing quote
    f"nul\x00{RUN}",                       # NUL: source must not hold one
    f"ls\u2028{RUN}",                      # Unicode line separator
    "bidi\u202e)tixe(\u2066",             # Trojan Source bidi overrides
    "\x1b]52;c;aGk=\x07osc",              # OSC 52: write the clipboard
    "\x1b[2Jclear",                        # clear the screen
    "=HYPERLINK(\"http:x\")",              # a spreadsheet formula
    "+cmd|' -C calc'!A0",                  # DDE
    "@SUM(1+1)",
    "-2+3",
    "\tTAB",
    "a|b|c\n| Alice | PASS |",             # a markdown row
    "<!--<script>alert(1)<\\script>",      # HTML comment, a script start
    "</script><script>alert(2)",           # ends the page's script (a graph name: '/' is no layer name)
    "\u2028\u2029js",                      # JS line terminators
    "]]>&<x>",                             # XML
    "end\n---\ngraph: x\n%%{init: {}}%%",    # front matter and mermaid directives
    "Ω_é—名",                             # plain non-ASCII (must survive)
]


def layer_names():
    """NAMES that can be layer names ('/' separates a module instance from its layers)."""
    return [n for n in NAMES if "/" not in n]
