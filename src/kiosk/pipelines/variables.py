"""Run-time pipeline variables: scoping, ``$(name)`` macros, environment names and secret masking.

Pure (no IO), so the rules the pipeline runner applies can be tested on their own:

* names are case-insensitive (``variables['build.reason']`` is ``Build.Reason``), and the spelling
  of the first definition is kept for display;
* ``$(name)`` macros are replaced with the variable's value; an undefined macro stays as written,
  which is what lets bash's own ``$(command)`` substitutions through untouched;
* every non-secret variable becomes an environment variable named ``NAME_UPPER`` with ``.`` and
  spaces turned into ``_``; secret variables never do (Azure's rule: a script gets a secret only
  through the step's ``env:`` mapping);
* secret values are replaced by ``***`` in every log line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from kiosk.pipelines.errors import PipelineError

__all__ = [
    "MASK",
    "SYSTEM_PREFIXES",
    "SecretMasker",
    "Variable",
    "VariableDefinition",
    "VariableSet",
    "environment_name",
    "is_system_name",
    "read_variables",
    "yaml_scalar_text",
]

MASK: Final = "***"
"""What a secret value becomes in a log line."""

SYSTEM_PREFIXES: Final = ("build.", "system.", "agent.", "pipeline.", "resources.")
"""Names that belong to the agent and the server: YAML cannot define them and scripts cannot set them."""

_MAX_EXPANSION_DEPTH: Final = 50


@dataclass(frozen=True)
class Variable:
    """A variable's value (always text, as on Azure) and whether it is secret."""

    value: str
    secret: bool = False


@dataclass(frozen=True)
class VariableDefinition:
    """One entry of a YAML ``variables:`` section, in order (later entries win)."""

    name: str
    value: str
    readonly: bool = False


def is_system_name(name: str) -> bool:
    """Whether ``name`` is a system/agent variable (``Build.BuildId``, ``Agent.OS``, ...)."""
    return name.lower().startswith(SYSTEM_PREFIXES)


def environment_name(name: str) -> str:
    """Azure's environment-variable name for a variable: ``Build.BuildId`` → ``BUILD_BUILDID``."""
    return re.sub(r"[. ]", "_", name).upper()


def yaml_scalar_text(value: Any) -> str:
    """The text of a YAML scalar used as a variable value or a step input.

    Azure keeps variable values as the strings written in the YAML; the expanded pipeline has
    already parsed them. Decision: booleans print as ``true``/``false`` (how they are written in
    YAML; Azure's ``True`` appears only when a ``${{ }}`` boolean is rendered into a longer
    string, which expansion has already done), ``None`` as '', numbers as written.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise PipelineError(f"expected a text value, found a {'list' if isinstance(value, list) else 'mapping'}")


def read_variables(section: Any, where: str) -> tuple[list[VariableDefinition], list[str]]:
    """Read a YAML ``variables:`` section (mapping form or list form) of ``where`` (for messages).

    Returns the definitions in order and warnings for what the emulator cannot provide
    (``group:`` entries: variable groups live on the Azure DevOps server). A malformed section
    is a :class:`PipelineError`.
    """
    definitions: list[VariableDefinition] = []
    warnings: list[str] = []
    if section is None:
        return definitions, warnings
    if isinstance(section, Mapping):
        for name, value in section.items():
            definitions.append(VariableDefinition(str(name), _value_text(value, str(name), where)))
        return definitions, warnings
    if not isinstance(section, list):
        raise PipelineError(f"{where}: 'variables' must be a mapping or a list")
    for item in section:
        if not isinstance(item, Mapping):
            raise PipelineError(f"{where}: each item of 'variables' must be a mapping, found {item!r}")
        if "group" in item:
            warnings.append(
                f"Variable group '{item['group']}' is not available in the emulator; its variables are not defined."
            )
        elif "name" in item:
            name = str(item["name"])
            readonly = item.get("readonly") is True or str(item.get("readonly", "")).lower() == "true"
            definitions.append(VariableDefinition(name, _value_text(item.get("value"), name, where), readonly))
        elif "template" in item:
            raise PipelineError(f"{where}: variable template '{item['template']}' was not expanded")
        else:
            raise PipelineError(f"{where}: a 'variables' item needs 'name' and 'value' (or 'group'), found {item!r}")
    return definitions, warnings


def _value_text(value: Any, name: str, where: str) -> str:
    try:
        return yaml_scalar_text(value)
    except PipelineError as err:
        raise PipelineError(f"{where}: variable '{name}': {err.message}") from None


class VariableSet:
    """Variables by case-insensitive name, with read-only marks and macro expansion.

    Copied (not shared) from scope to scope, so a job's ``setvariable`` never leaks into the
    next job, as on Azure.
    """

    def __init__(self, variables: Mapping[str, Variable] | None = None) -> None:
        self._items: dict[str, tuple[str, Variable]] = {}
        self._readonly: set[str] = set()
        for name, variable in (variables or {}).items():
            self.set(name, variable)

    def copy(self) -> VariableSet:
        clone = VariableSet()
        clone._items = dict(self._items)
        clone._readonly = set(self._readonly)
        return clone

    def set(self, name: str, variable: Variable, *, readonly: bool = False) -> None:
        """Define or replace ``name`` (the first spelling is kept); read-only marks accumulate."""
        key = name.lower()
        spelling = self._items[key][0] if key in self._items else name
        self._items[key] = (spelling, variable)
        if readonly:
            self._readonly.add(key)

    def is_readonly(self, name: str) -> bool:
        return name.lower() in self._readonly

    def get(self, name: str) -> Variable | None:
        entry = self._items.get(name.lower())
        return entry[1] if entry is not None else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[tuple[str, Variable]]:
        """(name as first spelled, variable) pairs in definition order."""
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> dict[str, str]:
        """Name → expanded value, the ``variables`` object of condition and ``$[ ]`` expressions.

        Secrets included: Azure lets conditions read them (only logs and environments hide them).
        """
        return {name: self.resolve(name) for name, _ in self}

    def secrets(self) -> list[str]:
        return [variable.value for _, variable in self if variable.secret]

    def environment(self) -> dict[str, str]:
        """The environment variables Azure derives from the non-secret variables (expanded)."""
        return {environment_name(name): self.resolve(name) for name, variable in self if not variable.secret}

    def resolve(self, name: str) -> str:
        """The value of ``name`` with macros in it expanded (the agent expands values recursively)."""
        variable = self.get(name)
        if variable is None:
            raise KeyError(name)
        return self._expand(variable.value, frozenset({name.lower()}), 1)

    def expand(self, text: str) -> str:
        """Replace each ``$(name)`` of a defined variable in ``text``; leave undefined ones as written.

        Like the agent, a ``$(`` that does not name a variable is skipped by two characters, so a
        macro nested inside bash's ``$(...)`` is still found.
        """
        return self._expand(text, frozenset(), 0)

    def _expand(self, text: str, visiting: frozenset[str], depth: int) -> str:
        if "$(" not in text:
            return text
        pieces: list[str] = []
        i = 0
        while (start := text.find("$(", i)) >= 0:
            end = text.find(")", start + 2)
            if end < 0:
                break
            name = text[start + 2 : end]
            variable = self.get(name)
            key = name.lower()
            if variable is None or key in visiting or depth >= _MAX_EXPANSION_DEPTH:
                # Undefined, or a cycle (a: $(b), b: $(a)): stays as written, as in Azure.
                pieces.append(text[i : start + 2])
                i = start + 2
                continue
            pieces.append(text[i:start])
            pieces.append(self._expand(variable.value, visiting | {key}, depth + 1))
            i = end + 1
        pieces.append(text[i:])
        return "".join(pieces)


class SecretMasker:
    """Replaces every registered secret value by ``***``, longest first.

    Longest first so a secret that contains another is masked whole rather than leaving its
    remainder readable. Only literal occurrences are masked (Azure does not mask encodings).
    Decision: a multi-line secret is also registered line by line, because logs are masked one
    line at a time and the whole value can never match a single line.
    """

    def __init__(self) -> None:
        self._values: list[str] = []

    def add(self, value: str) -> None:
        candidates = [value] + ([line.strip("\r") for line in value.split("\n")] if "\n" in value else [])
        changed = False
        for candidate in candidates:
            if candidate and "\n" not in candidate and candidate not in self._values:
                self._values.append(candidate)
                changed = True
        if changed:
            self._values.sort(key=len, reverse=True)

    def mask(self, line: str) -> str:
        for value in self._values:
            if value in line:
                line = line.replace(value, MASK)
        return line
