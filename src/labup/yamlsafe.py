"""Safe YAML loading for lab.yaml and values files: bounded in every direction, never a crash.

Every problem becomes a ConfigError naming the file and the line (or byte offset): a file that is not
a regular file (a FIFO would block, /dev/zero never ends), more than MAX_BYTES, a control character,
nesting deeper than MAX_DEPTH (Python's recursion would fail first), more than MAX_EXPANDED values
once aliases are expanded (a "billion laughs" of a few hundred bytes), a scalar longer than
MAX_SCALAR, a duplicate key, or a value its tag cannot hold (`!!int abc`, `2001-13-45`, an integer of
more digits than Python converts).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from labup.errors import ConfigError

MAX_BYTES = 1024 * 1024  # a lab.yaml is a few KiB; anything this big is a mistake or an attack
MAX_ALIASES = 64  # aliases are legitimate but rare
MAX_NODES = 20_000  # values as written
MAX_EXPANDED = 100_000  # values once every alias is expanded (what the program would walk)
MAX_DEPTH = 64
MAX_SCALAR = 64 * 1024
# YAML allows tab, newline and carriage return; any other C0 control (NUL, ESC, BEL...), DEL, C1 controls,
# the Unicode line/paragraph separators and next-line (PyYAML breaks lines there, editors and grep do not:
# a comment could hide a key), bidi overrides (the displayed order differs from the read one), and the
# non-characters U+FFFE/U+FFFF are refused
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffe\uffff]")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and bounds aliases, nodes, depth and scalars."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self._source = source
        self._aliases = 0
        self._nodes = 0
        self._depth = 0

    def _refuse(self, mark: Any, problem: str) -> ConfigError:
        where = f"line {mark.line + 1}: " if mark is not None else ""
        return ConfigError("", f"{self._source}: {where}{problem}")

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise self._refuse(mark, f"more than {MAX_ALIASES} YAML aliases (alias bomb?)")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise self._refuse(mark, f"more than {MAX_NODES} YAML values")
        if self.check_event(yaml.ScalarEvent) and len(self.peek_event().value) > MAX_SCALAR:
            raise self._refuse(mark, f"a value longer than {MAX_SCALAR // 1024} KiB")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise self._refuse(mark, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ConfigError, yaml.YAMLError):
            raise
        except (ValueError, TypeError, KeyError, OverflowError, IndexError, AttributeError) as exc:
            # e.g. `!!int abc`, `!!bool maybe`, `2001-13-45` as a date, 5000 digits as an integer
            # the value itself is not quoted: it may be a password (`password: !!int s3cret`)
            raise self._refuse(node.start_mark, f"the value is not a valid {node.tag.rsplit(':', 1)[-1]} "
                               f"({type(exc).__name__})") from None

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise self._refuse(key_node.start_mark, "a mapping key must be a plain value") from None
            if key in seen:
                raise self._refuse(key_node.start_mark,
                                   f"duplicate key '{key}' (first at line {seen[key] + 1})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


def _expanded_size(root: Any, source: str) -> int:
    """How many values the document holds once aliases are expanded (a shared node counts each time)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError("", f"{source}: line {node.start_mark.line + 1}: an alias refers to a value "
                                  "that contains it (a recursive YAML structure)")
        active.add(key)
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED:
                raise ConfigError("", f"{source}: more than {MAX_EXPANDED} values once aliases are expanded "
                                      "(alias bomb?)")
        active.discard(key)
        sizes[key] = total
        return total

    return size(root) if root is not None else 0


def load_text(text: str, source: str) -> Any:
    """Parse one YAML document safely; errors become ConfigError naming the source and line."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ConfigError("", f"{source}: larger than {MAX_BYTES // 1024} KiB")
    bad = _CONTROL.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise ConfigError("", f"{source}: line {line}: control character 0x{ord(bad.group()):02x} (at character "
                              f"{bad.start()}) is not allowed in YAML")
    try:
        loader = _StrictLoader(text, source)
    except yaml.YAMLError as exc:  # the reader's own checks (an encoding it refuses)
        raise ConfigError("", f"{source}: invalid YAML: {str(exc).splitlines()[0]}") from None
    try:
        node = loader.get_single_node()
        _expanded_size(node, source)
        return loader.construct_document(node) if node is not None else None
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError("", f"{source}: {where}invalid YAML: {problem}") from None
    except RecursionError:  # a last line of defence: MAX_DEPTH stops it long before
        raise ConfigError("", f"{source}: nested too deeply") from None
    finally:
        loader.dispose()


def read_bounded(path: Path, what: str = "file") -> bytes:
    """The bytes of a regular file of at most MAX_BYTES, or a ConfigError that names the path.

    Opened without blocking (a FIFO would wait for a writer forever) and checked to be a regular file
    before reading; the bound is enforced while reading, not from a size that can lie (/proc, /dev)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _open_error(path, exc, what) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError("", f"{path}: is a directory, expected a YAML {what}")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("", f"{path}: not a regular file (a device, FIFO or socket), expected a YAML {what}")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_BYTES:
                raise ConfigError("", f"{path}: larger than {MAX_BYTES // 1024} KiB")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise _open_error(path, exc, what) from None
    finally:
        os.close(fd)


def _open_error(path: Path, exc: OSError, what: str) -> ConfigError:
    reasons = {
        errno.ENOENT: "no such file",
        errno.EISDIR: f"is a directory, expected a YAML {what}",
        errno.EACCES: "permission denied",
        errno.ELOOP: "too many levels of symbolic links (a symlink loop?)",
        errno.ENAMETOOLONG: "the name is too long",
        errno.ENOTDIR: "a part of the path is not a directory",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    hint = "create one with `labup init` or pass -c PATH" if exc.errno == errno.ENOENT else None
    shown = str(path) if len(str(path)) <= 200 else str(path)[:200] + "..."
    return ConfigError("", f"{shown}: {reason}", hint=hint)


def load_file(path: Path) -> Any:
    """Read and parse a YAML file: a bounded read of a regular file, then load_text."""
    raw = read_bounded(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{path}: not UTF-8 text (byte {exc.start})") from None
    return load_text(text, str(path))
