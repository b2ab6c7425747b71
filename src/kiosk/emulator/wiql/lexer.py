"""WIQL text → tokens, each with its 1-based position so errors can point at it.

WIQL is case-insensitive; keywords are recognised by the parser from ``WORD`` tokens, so a field
named like a keyword still works in brackets (``[State]``). Token kinds:

- ``FIELD``: ``[System.State]`` or ``[Assigned To]`` (the text between the brackets);
- ``WORD``: keywords and bare field names (``SELECT``, ``System.Id``, ``WorkItems``);
- ``STRING``: ``'…'`` or ``"…"``, a doubled quote inside standing for one;
- ``NUMBER``: ``12``, ``2.5`` (a sign is the parser's business, for ``@Today - 2``);
- ``MACRO``: ``@Today``, ``@Me`` (the name without ``@``);
- ``OP``: ``= <> != < > <= >= ( ) , + - .``;
- ``END``: after the last token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kiosk.emulator.wiql.errors import WiqlSyntaxError

__all__ = ["Token", "tokenize"]

_TWO_CHAR_OPS: Final = ("<>", "!=", "<=", ">=")
_ONE_CHAR_OPS: Final = frozenset("=<>(),+-.*")
_WORD_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    position: int
    """1-based character position in the query text."""

    def is_word(self, *words: str) -> bool:
        """Whether this is a ``WORD`` equal (case-insensitively) to one of ``words``."""
        return self.kind == "WORD" and self.text.upper() in words


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``END`` token; :class:`WiqlSyntaxError` on a stray character."""
    tokens: list[Token] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
            continue
        start = index
        if char == "[":
            end = text.find("]", index + 1)
            if end < 0:
                raise WiqlSyntaxError("A field name is not closed with ']'.", start + 1, text[start : start + 40])
            name = text[index + 1 : end].strip()
            if not name:
                raise WiqlSyntaxError("A field name is empty.", start + 1, "[]")
            tokens.append(Token("FIELD", name, start + 1))
            index = end + 1
        elif char in "'\"":
            parts: list[str] = []
            index += 1
            while True:
                end = text.find(char, index)
                if end < 0:
                    raise WiqlSyntaxError("A string is not closed.", start + 1, text[start : start + 40])
                parts.append(text[index:end])
                if end + 1 < length and text[end + 1] == char:  # a doubled quote is one quote
                    parts.append(char)
                    index = end + 2
                    continue
                index = end + 1
                break
            tokens.append(Token("STRING", "".join(parts), start + 1))
        elif char.isdigit():
            while index < length and (text[index].isdigit() or text[index] == "."):
                index += 1
            number = text[start:index]
            if number.count(".") > 1 or number.endswith("."):
                raise WiqlSyntaxError("A number is malformed.", start + 1, number)
            tokens.append(Token("NUMBER", number, start + 1))
        elif char == "@":
            index += 1
            while index < length and (text[index].isalnum() or text[index] == "_"):
                index += 1
            name = text[start + 1 : index]
            if not name:
                raise WiqlSyntaxError("A macro name is expected after '@'.", start + 1, "@")
            tokens.append(Token("MACRO", name, start + 1))
        elif text.startswith(_TWO_CHAR_OPS, index):
            tokens.append(Token("OP", text[index : index + 2], start + 1))
            index += 2
        elif char in _ONE_CHAR_OPS:
            tokens.append(Token("OP", char, start + 1))
            index += 1
        elif char.isalpha() or char == "_":
            while index < length and (text[index] in _WORD_CHARS or text[index].isalpha()):
                index += 1
            tokens.append(Token("WORD", text[start:index], start + 1))
        else:
            raise WiqlSyntaxError("Unexpected character.", start + 1, char)
    tokens.append(Token("END", "", length + 1))
    return tokens
