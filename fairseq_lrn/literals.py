"""Configuration strings read as Python literals, never run as code.

fairseq reads some flags by calling ``eval`` on their text (``--adaptive-softmax-cutoff
10000,50000``, ``--encoder-layers "[(512, 3)] * 20"``, ``--adam-betas "(0.9, 0.98)"``, ...). The
same text comes back from a checkpoint's args, where anyone who edited the file chose it.
:func:`literal_value` reads exactly the values those flags take and nothing else: numbers,
strings, bytes, ``True`` / ``False`` / ``None``, tuples, lists, sets and dicts of them, ``+`` /
``-`` on numbers (``1e-3``, ``-1``, ``1+2j``), and the two list expressions fairseq's own
defaults use: joining (``[(512, 3)] * 9 + [(1024, 3)] * 4``) and repeating (``[(512, 3)] * 20``).
Names, calls, attributes, subscripts, comprehensions, lambdas and ``**`` are refused with
:class:`NotALiteralError`; a repetition longer than :data:`MAX_ITEMS` is refused too (it would
only fill memory).

This module imports nothing but ``ast`` (the models and the fairseq fixes both use it).
"""

import ast
from typing import Optional

#: The longest list, tuple or string a repetition (``x * n``) may build.
MAX_ITEMS = 100_000


class NotALiteralError(ValueError):
    """A configuration string that is not a literal (:func:`literal_value`); ``text`` is the
    string, ``field`` the configuration field it came from when known."""

    def __init__(self, text: str, reason: str, field: Optional[str] = None):
        self.text, self.reason, self.field = text, reason, field
        where = f"{field} = " if field else ""
        super().__init__(f"{where}{text!r} is not a Python literal ({reason}); fairseq-lrn reads configuration "
                         f"strings that fairseq would eval() as literals only: numbers, strings, True/False/None, "
                         f"and tuples, lists, dicts of them (lists may be joined with + and repeated with *)")

    def naming(self, field: str) -> "NotALiteralError":
        """The same error, naming the configuration field the text came from."""
        return NotALiteralError(self.text, self.reason, field)


def literal_value(text):
    """The value of ``text``, a Python literal expression (see the module docstring), as
    ``eval`` would compute it. Raises :class:`NotALiteralError` for anything else, ``TypeError``
    when ``text`` is not a string (as ``eval`` does), so that it can stand in for ``eval`` in
    fairseq's ``eval_str_list`` / ``eval_str_dict`` / ``eval_bool``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not isinstance(text, str):
        raise TypeError(f"literal_value() arg 1 must be a string, not {type(text).__name__}")
    try:
        tree = ast.parse(text.strip(" \t"), mode="eval")
    except SyntaxError as error:
        raise NotALiteralError(text, f"not an expression: {error.msg}") from None
    return _value(tree.body, text)


_NUMBERS = (int, float, complex)


def _value(node, text):
    """Evaluate one node of a literal expression (``text`` names the whole in errors)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_value(item, text) for item in node.elts]
        return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise NotALiteralError(text, "'**' in a dict")
        return {_value(k, text): _value(v, text) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        operand = _value(node.operand, text)
        if not isinstance(operand, _NUMBERS) or isinstance(operand, bool):
            raise NotALiteralError(text, "a sign before something that is not a number")
        return +operand if isinstance(node.op, ast.UAdd) else -operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
        return _binary(node.op, _value(node.left, text), _value(node.right, text), text)
    raise NotALiteralError(text, f"it contains {_describe(node)}")


def _binary(op, left, right, text):
    """``left op right`` for numbers, joined sequences and repeated sequences only."""
    numbers = all(isinstance(x, _NUMBERS) and not isinstance(x, bool) for x in (left, right))
    if numbers:
        return left + right if isinstance(op, ast.Add) else left - right if isinstance(op, ast.Sub) \
            else left * right
    sequences = (list, tuple, str, bytes)
    if isinstance(op, ast.Add) and type(left) is type(right) and isinstance(left, sequences):
        return left + right
    if isinstance(op, ast.Mult):
        sequence, count = (left, right) if isinstance(left, sequences) else (right, left)
        if isinstance(sequence, sequences) and isinstance(count, int) and not isinstance(count, bool):
            if len(sequence) * max(count, 0) > MAX_ITEMS:
                raise NotALiteralError(text, f"a repetition of more than {MAX_ITEMS} items")
            return sequence * count
    raise NotALiteralError(text, f"{type(left).__name__} {_OPERATORS[type(op)]} {type(right).__name__}")


_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}


def _describe(node) -> str:
    """What a refused node is, for the error message."""
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Call):
        return "a call"
    if isinstance(node, ast.Attribute):
        return f"an attribute (.{node.attr})"
    return f"a {type(node).__name__} expression"
