"""Where each option of ``burst run`` comes from, and what a re-run changed.

Highest first: the command line; what the campaign's previous run was given on
its command line (a re-run need not retype ``--machines 4 --spot``);
``burst.toml`` beside the job file; ``~/.config/burst/config.toml``
(``$XDG_CONFIG_HOME``); argparse's defaults. Config files only set defaults, so a
changed ``burst.toml`` applies to the next re-run, while an option typed once
stays until another value is typed (``--on-demand``, ``--no-retry-failed`` undo
the flags). The campaign record keeps both what was typed and every value used,
so the next run can say what changed.

What one invocation does (``-c``, ``-d``, ``--wait``, ``--force``, ``--dry-run``,
``--yes``, ``--tag-offset``, ``--no-check``) may be set in a config file but is never carried over
from a previous run.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from burst.errors import UserError

CONFIG_NAME = "burst.toml"
PER_INVOCATION = frozenset({"create", "dispatch", "wait", "force", "dry_run", "yes", "tag_offset", "no_check"})
_UNSET = object()


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "burst" / "config.toml"


@dataclass
class RunOptions:
    """The resolved options, and what the record keeps of them (JSON values, paths absolute)."""

    args: argparse.Namespace
    typed: dict[str, Any] = field(default_factory=dict)  # options given on this command line or reused from the last
    used: dict[str, Any] = field(default_factory=dict)  # every remembered option's value in this run
    notes: list[str] = field(default_factory=list)  # where values came from, what changed since the last run
    given: set[str] = field(default_factory=set)  # the options this command line gives (not reused, not configured)


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest != "help" and a.option_strings}


def _is_flag(action: argparse.Action) -> bool:
    return action.nargs == 0


def _json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, list):
        return [str(v) for v in value]
    return value


def _from_json(action: argparse.Action, value: Any) -> Any:
    return Path(value) if action.type is Path and value is not None else value


def _option_name(action: argparse.Action) -> str:
    return "--market" if action.dest == "market" else next(o for o in reversed(action.option_strings) if not o.startswith("--no-"))


def _value_text(action: argparse.Action, value: Any) -> str:
    if action.dest == "env":  # values may be secrets: names only
        value = [v.split("=", 1)[0] for v in value or []]
    if _is_flag(action) and action.dest != "market":
        return "on" if value else "off"
    if value is None:
        said = re.search(r"\(default:? ([^)]*)\)", action.help or "")  # the help says what the default does
        return f"the default ({said.group(1)})" if said else "the default"
    if value == []:
        return "none"
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _shown(action: argparse.Action, value: Any) -> str:
    """An option and its value: ``--machines 4``, ``--market spot``, ``--retry-failed on``."""
    return f"{_option_name(action)} {_value_text(action, value)}"


def _typed_on_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The positional words, and the options the command line gives.

    Every option starts set (to a marker), so argparse fills in no default for it.
    """
    start = {dest: (None if isinstance(a, argparse._AppendAction) else _UNSET) for dest, a in _actions(parser).items()}
    parsed = vars(parser.parse_args(argv, namespace=argparse.Namespace(**start)))
    positional = [str(parsed[a.dest]) for a in parser._actions if not a.option_strings]
    return positional, {dest: parsed[dest] for dest in start if parsed[dest] is not _UNSET and parsed[dest] is not None}


def _convert(by_name: dict[str, argparse.Action], path: Path, key: str, value: Any) -> tuple[str, Any]:
    """A config entry as the option's own type checks it; a bad one names the file, the key and the fix.

    ``by_name``: each option by its name without dashes (``retry_failed``, ``spot``) and by its dest (``market``).
    """
    name = key.replace("-", "_")
    action = by_name.get(name)
    where = f"{path}: {key}"
    if action is None:
        close = difflib.get_close_matches(name, sorted(by_name), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (AMI, JOB and JOBFILE go on the command line)"
        raise UserError(f"{where} is not an option of `burst run`{hint} Fix or remove it.")
    try:
        if action.dest == "market":
            if name != "market":
                if value is not True:
                    raise ValueError(f"write {key} = true, or market = \"on-demand\"")
                return "market", action.const
            if value not in ("on-demand", "spot", "spot-only"):
                raise ValueError("market is \"on-demand\", \"spot\" or \"spot-only\"")
            return "market", value
        if _is_flag(action):
            if not isinstance(value, bool):
                raise ValueError("write true or false")
            if isinstance(action, argparse._StoreConstAction):  # store_true and the like: true is the flag given
                return action.dest, action.const if value else action.default
            return action.dest, value  # --x / --no-x
        if isinstance(action, argparse._AppendAction):
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) for v in items):
                raise ValueError("write a string or a list of strings")
            return action.dest, items
        if isinstance(value, (dict, list, bool)):
            raise ValueError("write a single value")
        converted = action.type(str(value)) if action.type else str(value)
        if isinstance(value, str) and isinstance(converted, (int, float)):
            raise ValueError(f"write the number without quotes ({key} = {value})")
        if action.choices is not None and converted not in action.choices:
            raise ValueError(f"choose from {', '.join(map(str, action.choices))}")
        if isinstance(converted, Path) and not converted.is_absolute():
            converted = (path.parent / converted).resolve()  # relative to the config file, not the shell
        return action.dest, converted
    except (ValueError, TypeError, argparse.ArgumentTypeError) as error:
        raise UserError(f"{where} = {value!r} is not valid: {error}. Fix it in {path}.") from None


def read_config(parser: argparse.ArgumentParser, path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid TOML ({error}): fix it, or move it away.") from None
    by_name = {o[2:].replace("-", "_"): a for a in parser._actions for o in a.option_strings if o.startswith("--")}
    by_name = {**_actions(parser), **by_name}
    return dict(_convert(by_name, path, key, value) for key, value in data.items())


def resolve(parser: argparse.ArgumentParser, argv: list[str],
            previous_of: Callable[[str], tuple[dict[str, Any], dict[str, Any]] | None]) -> RunOptions:
    """Parse ``argv`` with the config files and the previous run's options as defaults.

    ``previous_of(job)`` is what the campaign's last run was typed and used (None: a new campaign).
    """
    positional, typed = _typed_on_command_line(parser, argv)
    actions = _actions(parser)
    values = vars(parser.parse_args(["--", *positional]))  # the positionals, and argparse's defaults
    previous_typed, previous_used = previous_of(values["job"]) or ({}, None)
    sources: dict[str, str] = {}
    layers = [(p, read_config(parser, p)) for p in (user_config_path(), Path(values["jobfile"]).parent / CONFIG_NAME)]
    for path, config in layers:
        values.update(config)
        sources.update({dest: str(path) for dest in config})
    reused = {dest: _from_json(actions[dest], v) for dest, v in (previous_typed or {}).items()
              if dest in actions and dest not in PER_INVOCATION and dest not in typed}
    values.update(reused)
    sources.update({dest: "the last run" for dest in reused})
    values.update(typed)
    sources.update({dest: "the command line" for dest in typed})
    args = argparse.Namespace(**values)
    remembered = [d for d in actions if d not in PER_INVOCATION]
    options = RunOptions(
        args=args,
        typed={d: _json(values[d]) for d in remembered if d in typed or d in reused},
        used={d: _json(values[d]) for d in remembered},
        given=set(typed),
    )
    for path, config in layers:
        if config:
            options.notes.append(f"defaults from {path}: " + ", ".join(_shown(actions[d], v) for d, v in config.items()))
    if reused:
        options.notes.append("as in the last run: " + ", ".join(_shown(actions[d], v) for d, v in reused.items()))
    if previous_used is not None:
        changed = [f"  {_option_name(actions[d])} {_value_text(actions[d], previous_used.get(d))} → "
                   f"{_value_text(actions[d], options.used[d])} (from {sources.get(d, 'the default')})"
                   for d in remembered if d in previous_used and previous_used[d] != options.used[d]]
        if changed:
            options.notes.append("\n".join(["changed since the last run:", *changed]))
    return options
