"""Tokenizer and recursive-descent parser of DynamoDB's expression language.

Grammar (keywords case-insensitive, function names as DynamoDB spells them)::

    condition  := or
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | "(" condition ")" | function | comparison
    comparison := operand ( cmp operand | "BETWEEN" operand "AND" operand
                          | "IN" "(" operand ("," operand)* ")" )
    cmp        := "=" | "<>" | "<" | "<=" | ">" | ">="
    operand    := path | ":value" | "size" "(" path ")"
    path       := name ("." name | "[" digits "]")*      name := identifier | "#name"

    update     := clause+ (each of SET, REMOVE, ADD, DELETE at most once)
    SET        := path "=" value ("," path "=" value)*
    value      := term (("+" | "-") term)?
    term       := operand | "if_not_exists" "(" path "," value ")"
                | "list_append" "(" value "," value ")"
    REMOVE     := path ("," path)*
    ADD/DELETE := path ":value" ("," path ":value")*

    projection := path ("," path)*

Precedence follows DynamoDB's documentation: comparisons, IN, BETWEEN and functions bind
tightest, then NOT, then AND, then OR. Parsed trees are cached by text (:func:`parse`), so a
hot loop with one expression parses it once.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NoReturn

from ..errors import ValidationError
from .nodes import (
    And,
    Arith,
    Between,
    Compare,
    Cond,
    Func,
    In,
    Not,
    Operand,
    Or,
    Path,
    Projection,
    SetAction,
    Update,
    Value,
)

__all__ = ["CACHE_SIZE", "MAX_EXPRESSION_BYTES", "KINDS", "parse"]

MAX_EXPRESSION_BYTES = 4096
CACHE_SIZE = 1024
MAX_IN_OPTIONS = 100
KINDS = ("ConditionExpression", "FilterExpression", "KeyConditionExpression",
         "UpdateExpression", "ProjectionExpression")

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<name>\#[A-Za-z0-9_]+)
  | (?P<value>:[A-Za-z0-9_]+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<int>[0-9]+)
  | (?P<op><>|<=|>=|[=<>()\[\],.+\-])
""", re.VERBOSE)
_KEYWORDS = frozenset({"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"})
_CLAUSES = ("SET", "REMOVE", "ADD", "DELETE")
_COMPARATORS = frozenset({"=", "<>", "<", "<=", ">", ">="})
_CONDITION_FUNCS = {"attribute_exists": 1, "attribute_not_exists": 1, "attribute_type": 2,
                    "begins_with": 2, "contains": 2}
_UPDATE_FUNCS = {"if_not_exists": 2, "list_append": 2}
_EOF = "<EOF>"


class _Tok:
    __slots__ = ("kind", "text", "pos")

    def __init__(self, kind: str, text: str, pos: int) -> None:
        self.kind, self.text, self.pos = kind, text, pos


def _tokenize(text: str, what: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValidationError(
                f"Invalid {what}: Syntax error; token: \"{text[pos]}\", near: "
                f"\"{text[max(0, pos - 10):pos + 10]}\"")
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            word = m.group()
            if kind == "ident" and word.upper() in _KEYWORDS:
                kind, word = "kw", word.upper()
            out.append(_Tok(kind, word, pos))
        pos = m.end()
    out.append(_Tok("eof", _EOF, len(text)))
    return out


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        self.toks = _tokenize(text, what)
        self.i = 0

    # -- tokens ------------------------------------------------------------------------

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, tok: _Tok | None = None) -> NoReturn:
        tok = tok or self.tok
        j = self.toks.index(tok)
        near = " ".join(t.text for t in self.toks[max(0, j - 1):j + 2] if t.kind != "eof")
        raise ValidationError(
            f"Invalid {self.what}: Syntax error; token: \"{tok.text}\", near: \"{near}\"")

    def error(self, message: str) -> NoReturn:
        raise ValidationError(f"Invalid {self.what}: {message}")

    def take(self, text: str) -> bool:
        if self.tok.text == text and self.tok.kind in ("op", "kw"):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            self.fail()

    def end(self) -> None:
        if self.tok.kind != "eof":
            self.fail()

    # -- paths and operands ------------------------------------------------------------

    def path(self) -> Path:
        tok = self.tok
        if tok.kind not in ("ident", "name"):
            self.fail()
        self.i += 1
        elems: list[str | int] = [tok.text]
        while True:
            if self.take("."):
                tok = self.tok
                if tok.kind not in ("ident", "name"):
                    self.fail()
                self.i += 1
                elems.append(tok.text)
            elif self.take("["):
                tok = self.tok
                if tok.kind != "int":
                    self.fail()
                self.i += 1
                elems.append(int(tok.text))
                self.expect("]")
            else:
                return Path(tuple(elems))

    def call(self, funcs: dict[str, int]) -> Func:
        tok = self.tok
        name = tok.text
        if name not in funcs:
            self.error(f"Invalid function name; function: {name}")
        self.i += 2  # name and "("
        args: list[Operand] = [self.value() if name in _UPDATE_FUNCS else self.operand()]
        while self.take(","):
            args.append(self.value() if name in _UPDATE_FUNCS else self.operand())
        self.expect(")")
        if len(args) != funcs[name]:
            self.error(f"Incorrect number of operands for operator or function; "
                       f"operator or function: {name}, number of operands: {len(args)}")
        return Func(name, tuple(args))

    def is_call(self) -> bool:
        return self.tok.kind == "ident" and self.toks[self.i + 1].text == "("

    def operand(self) -> Operand:
        tok = self.tok
        if tok.kind == "value":
            self.i += 1
            return Value(tok.text)
        if self.is_call():
            if tok.text in _CONDITION_FUNCS or tok.text in _UPDATE_FUNCS:
                self.error(f"The function is not allowed to be used this way in an "
                           f"expression; function: {tok.text}")
            f = self.call({"size": 1})
            if not isinstance(f.args[0], Path):
                self.error("Incorrect operand type for operator or function; operator or "
                           "function: size, operand type: value placeholder")
            return f
        return self.path()

    # -- conditions --------------------------------------------------------------------

    def condition(self) -> Cond:
        node = self.conjunction()
        while self.take("OR"):
            node = Or(node, self.conjunction())
        return node

    def conjunction(self) -> Cond:
        node = self.negation()
        while self.take("AND"):
            node = And(node, self.negation())
        return node

    def negation(self) -> Cond:
        if self.take("NOT"):
            return Not(self.negation())
        if self.take("("):
            node = self.condition()
            self.expect(")")
            return node
        if self.is_call() and self.tok.text in _CONDITION_FUNCS:
            return self.call(_CONDITION_FUNCS)
        return self.comparison()

    def comparison(self) -> Cond:
        left = self.operand()
        tok = self.tok
        if tok.kind == "op" and tok.text in _COMPARATORS:
            self.i += 1
            return Compare(tok.text, left, self.operand())
        if self.take("BETWEEN"):
            low = self.operand()
            self.expect("AND")
            return Between(left, low, self.operand())
        if self.take("IN"):
            self.expect("(")
            options = [self.operand()]
            while self.take(","):
                options.append(self.operand())
            self.expect(")")
            if len(options) > MAX_IN_OPTIONS:
                self.error(f"The IN operator takes at most {MAX_IN_OPTIONS} operands; "
                           f"number of operands: {len(options)}")
            return In(left, tuple(options))
        self.fail()

    # -- updates -----------------------------------------------------------------------

    def value(self) -> Operand:
        left = self.term()
        tok = self.tok
        if tok.kind == "op" and tok.text in "+-":
            self.i += 1
            return Arith(tok.text, left, self.term())
        return left

    def term(self) -> Operand:
        if self.is_call() and self.tok.text in _UPDATE_FUNCS:
            f = self.call(_UPDATE_FUNCS)
            if f.name == "if_not_exists" and not isinstance(f.args[0], Path):
                self.error("Operator or function requires a document path; operator or "
                           "function: if_not_exists")
            return f
        if self.is_call():
            if self.tok.text in _CONDITION_FUNCS or self.tok.text == "size":
                self.error(f"The function is not allowed in an update expression; "
                           f"function: {self.tok.text}")
            self.error(f"Invalid function name; function: {self.tok.text}")
        return self.operand()

    def update(self) -> Update:
        clauses: dict[str, list[object]] = {}
        if self.tok.kind == "eof":
            self.fail()
        while self.tok.kind != "eof":
            tok = self.tok
            if tok.kind != "kw" or tok.text not in _CLAUSES:
                self.fail()
            if tok.text in clauses:
                self.error(f"The \"{tok.text}\" section can only be used once in an "
                           "update expression;")
            self.i += 1
            actions: list[object] = []
            while True:
                actions.append(self.action(tok.text))
                if not self.take(","):
                    break
            clauses[tok.text] = actions
        return Update(
            set=tuple(clauses.get("SET", ())),  # type: ignore[arg-type]
            remove=tuple(clauses.get("REMOVE", ())),  # type: ignore[arg-type]
            add=tuple(clauses.get("ADD", ())),  # type: ignore[arg-type]
            delete=tuple(clauses.get("DELETE", ())),  # type: ignore[arg-type]
        )

    def action(self, clause: str) -> object:
        path = self.path()
        if clause == "SET":
            self.expect("=")
            return SetAction(path, self.value())
        if clause == "REMOVE":
            return path
        tok = self.tok
        if tok.kind != "value":
            self.fail()
        self.i += 1
        return (path, Value(tok.text))


@lru_cache(maxsize=CACHE_SIZE)
def _parse(kind: str, text: str) -> Cond | Update | Projection:
    p = _Parser(text, kind)
    node: Cond | Update | Projection
    if kind == "UpdateExpression":
        node = p.update()
    elif kind == "ProjectionExpression":
        paths = [p.path()]
        while p.take(","):
            paths.append(p.path())
        node = Projection(tuple(paths))
    else:
        node = p.condition()
    p.end()
    return node


def parse(kind: str, text: str) -> Cond | Update | Projection:
    """Parse ``text`` as an expression of ``kind`` (one of :data:`KINDS`); cached by text.

    :raises ValidationError: ``Invalid <kind>: …`` for an empty, oversized or malformed one.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown expression kind {kind!r}")
    if not isinstance(text, str):
        raise ValidationError(f"{kind} must be a str, not {type(text).__name__}")
    if not text.strip():
        raise ValidationError(f"Invalid {kind}: The expression can not be empty;")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_EXPRESSION_BYTES:
        raise ValidationError(f"Invalid {kind}: Expression size has exceeded the maximum "
                              f"allowed size; expression size: {size}")
    return _parse(kind, text)
