"""The parser: tokens -> `nodes` tree, for a grammar that only has what the language allows.

    expression := or
    or         := and (("||" | "or") and)*
    and        := unary (("&&" | "and") unary)*
    unary      := ("!" | "not") unary | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") operand)?
    operand    := literal | list | placeholder | name | "(" expression ")"
    list       := "[" (item ("," item)* ","?)? "]"       item := literal | placeholder
    name       := NAME ("." NAME)*                      (its first NAME a root of the scope)
    literal    := NUMBER | "-" NUMBER | STRING | "true" | "false" | "null"

Why a parser of our own in front of CEL: the CEL binding (``common-expression-language``) exposes no
syntax tree, only the lists of variables and functions a compiled program references, and in those lists
macros vanish (``x.exists(y, ...)`` shows up as ``_||_`` and ``!_``; ``has(a.b)`` as nothing). Checking
those lists could not refuse every call, index or comprehension. So the language is defined here, by
this grammar; what it accepts is rendered back as CEL (`render`) and CEL evaluates it. The functions list
is still checked after compiling (`compile`), as a second lock.
"""

from __future__ import annotations

from typing import Final

from opsresponder.rules.expressions.errors import ExpressionError
from opsresponder.rules.expressions.nodes import (
    And,
    Compare,
    ListLiteral,
    Literal,
    Name,
    Node,
    Not,
    Or,
    Placeholder,
)
from opsresponder.rules.expressions.scope import Scope
from opsresponder.rules.expressions.tokens import Kind, Token, tokenize

MAX_DEPTH: Final = 32
"""Nesting (parentheses, negations) one expression may have: keeps the recursive parser's stack small."""
MAX_NODES: Final = 200
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

KEYWORDS: Final = frozenset({"true", "false", "null", "in", "and", "or", "not"})
# CEL's reserved words: never valid names, and naming them is how an "import" or "package" is refused.
RESERVED: Final = frozenset(
    {
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)
_SIMPLE_COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})


def parse(text: str, scope: Scope, variables: frozenset[str] | None = None) -> Node:
    """The checked tree of `text`.

    Args:
        text: the expression.
        scope: the roots its names may reach.
        variables: the declared template variables a placeholder may name; None refuses placeholders.

    Raises:
        ExpressionError: a syntax error, a construct the language does not have (a call, an index,
            arithmetic, a comprehension, a map), a name outside `scope`, an undeclared placeholder.
    """
    return _Parser(tokenize(text), scope, variables).expression_only()


class _Parser:
    def __init__(self, tokens: list[Token], scope: Scope, variables: frozenset[str] | None) -> None:
        self.tokens = tokens
        self.i = 0
        self.scope = scope
        self.variables = variables
        self.depth = 0
        self.nodes = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind is not Kind.END:
            self.i += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.current
        return token.kind in (Kind.OPERATOR, Kind.NAME) and token.text in texts

    def count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ExpressionError(f"more than {MAX_NODES} terms in one expression")

    def expression_only(self) -> Node:
        node = self.expression()
        if self.current.kind is not Kind.END:
            raise self.unexpected("an operator such as &&, ||, ==, in, or the end")
        return node

    def expression(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels", self.current.column)
        try:
            return self.disjunction()
        finally:
            self.depth -= 1

    def disjunction(self) -> Node:
        operands = [self.conjunction()]
        while self.at("||", "or"):
            self.advance()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Node:
        operands = [self.unary()]
        while self.at("&&", "and"):
            self.advance()
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def unary(self) -> Node:
        if self.at("!", "not"):
            self.advance()
            self.count()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels", self.current.column)
            try:
                return Not(self.unary())
            finally:
                self.depth -= 1
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        op: str | None = None
        if self.current.kind is Kind.OPERATOR and self.current.text in _SIMPLE_COMPARISONS:
            op = self.advance().text
        elif self.at("in"):
            self.advance()
            op = "in"
        elif self.at("not") and self.tokens[self.i + 1].text == "in":
            self.advance()
            self.advance()
            op = "not in"
        if op is None:
            return left
        self.count()
        right = self.operand()
        token = self.current
        if (token.kind is Kind.OPERATOR and token.text in _SIMPLE_COMPARISONS) or self.at("in"):
            raise ExpressionError(
                "comparisons do not chain (a < b < c): join two comparisons with &&", token.column
            )
        return Compare(op, left, right)

    def operand(self) -> Node:
        self.count()
        token = self.current
        if token.kind is Kind.OPERATOR:
            if token.text == "(":
                self.advance()
                node = self.expression()
                self.expect(")")
                return self.no_member_access(node, token)
            if token.text == "[":
                return self.no_member_access(self.list_literal(), token)
            if token.text == "-":
                return self.literal()
        if token.kind in (Kind.NUMBER, Kind.STRING):
            return self.no_member_access(self.literal(), token)
        if token.kind is Kind.PLACEHOLDER:
            return self.no_member_access(self.placeholder(), token)
        if token.kind is Kind.NAME:
            if token.text in ("true", "false", "null"):
                return self.no_member_access(self.literal(), token)
            return self.name()
        raise self.unexpected("a value, a name or (")

    def literal(self) -> Literal:
        token = self.advance()
        if token.kind is Kind.OPERATOR and token.text == "-":
            number = self.advance()
            if number.kind is not Kind.NUMBER:
                raise ExpressionError(
                    "arithmetic is not part of the language (- only before a number)", token.column
                )
            assert isinstance(number.value, int | float)
            return self.checked_number(-number.value, token.column)
        if token.kind is Kind.NUMBER:
            assert isinstance(token.value, int | float)
            return self.checked_number(token.value, token.column)
        if token.kind is Kind.STRING:
            assert isinstance(token.value, str)
            return Literal(token.value)
        if token.kind is Kind.NAME and token.text in ("true", "false", "null"):
            return Literal({"true": True, "false": False, "null": None}[token.text])
        raise ExpressionError(f"expected a literal, found {_show(token)}", token.column)

    @staticmethod
    def checked_number(value: int | float, column: int) -> Literal:
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise ExpressionError(f"{value} does not fit a 64-bit integer", column)
        return Literal(value)

    def list_literal(self) -> ListLiteral:
        self.expect("[")
        items: list[Literal | Placeholder] = []
        while not self.at("]"):
            token = self.current
            self.count()
            if token.kind is Kind.PLACEHOLDER:
                items.append(self.placeholder())
            elif token.kind in (Kind.NUMBER, Kind.STRING) or self.at("-", "true", "false", "null"):
                items.append(self.literal())
            else:
                raise ExpressionError(
                    f"list items must be literals or placeholders, found {_show(token)}", token.column
                )
            if not self.at(","):
                break
            self.advance()
        self.expect("]")
        return ListLiteral(tuple(items))

    def placeholder(self) -> Placeholder:
        token = self.advance()
        assert isinstance(token.value, str)
        if self.variables is None:
            raise ExpressionError("placeholders ({{ name }}) are not allowed here", token.column)
        if token.value not in self.variables:
            known = ", ".join(sorted(self.variables)) or "none declared"
            raise ExpressionError(f"unknown variable {token.value!r} (variables: {known})", token.column)
        return Placeholder(token.value, token.column)

    def name(self) -> Name:
        first = self.advance()
        parts = [self.identifier(first)]
        while self.at("."):
            dot = self.advance()
            part = self.current
            if part.kind is not Kind.NAME:
                raise ExpressionError(f"a name must follow '.', found {_show(part)}", dot.column)
            self.advance()
            parts.append(self.identifier(part))
        follower = self.current
        if follower.kind is Kind.OPERATOR and follower.text == "(":
            raise ExpressionError(f"function calls are not allowed ({'.'.join(parts)}(...))", follower.column)
        if follower.kind is Kind.OPERATOR and follower.text == "[":
            raise ExpressionError(
                f"indexing is not allowed ({'.'.join(parts)}[...]); use dotted names", follower.column
            )
        problem = self.scope.check(tuple(parts))
        if problem is not None:
            raise ExpressionError(problem, first.column)
        return Name(tuple(parts), first.column)

    @staticmethod
    def identifier(token: Token) -> str:
        if token.text in RESERVED:
            raise ExpressionError(f"{token.text!r} is a reserved word, not a name", token.column)
        if token.text in KEYWORDS:
            raise ExpressionError(f"{token.text!r} is a keyword, not a name", token.column)
        return token.text

    def no_member_access(self, node: Node, start: Token) -> Node:
        token = self.current
        if token.kind is Kind.OPERATOR and token.text in (".", "(", "["):
            what = {".": "attribute access", "(": "function calls", "[": "indexing"}[token.text]
            raise ExpressionError(
                f"{what} on {_show(start)}... is not allowed: only dotted names", token.column
            )
        return node

    def expect(self, text: str) -> None:
        if not (self.current.kind is Kind.OPERATOR and self.current.text == text):
            raise self.unexpected(repr(text))
        self.advance()

    def unexpected(self, wanted: str) -> ExpressionError:
        token = self.current
        if token.kind is Kind.OPERATOR and token.text in ("(", "["):
            what = "function calls" if token.text == "(" else "indexing"
            return ExpressionError(f"{what} are not allowed", token.column)
        return ExpressionError(f"expected {wanted}, found {_show(token)}", token.column)


def _show(token: Token) -> str:
    return "the end" if token.kind is Kind.END else repr(token.text)
