# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A YAML subset reader and writer in the standard library only, for the stand-ins.

The stand-ins run on bare Debian hosts with python3 and nothing else, so PyYAML is not there.
kubeadm reads its config with sigs.k8s.io/yaml (go-yaml v2, YAML 1.1 rules, then strict JSON
decoding), so plain scalars resolve the way go-yaml resolves them: ``1.31`` is a float, ``off``,
``y`` and ``yes`` are booleans, ``0755`` is an octal int. That is what makes the YAML traps of
kubeadm-facts.md visible here. Duplicate keys are errors, as in strict decoding.

Supported: block mappings and sequences (compact forms included), plain / single / double quoted
scalars, literal and folded block scalars, flow collections, comments, ``---`` documents and the
``!!str``-style core tags. Anchors, aliases, custom tags and complex keys raise YamlError: the
product's templates do not need them, and a stand-in that guessed would hide a real problem.
"""

import json
import re

__all__ = ["YamlError", "load_all", "load", "dump", "dump_all"]


class YamlError(ValueError):
    pass


_NULLS = ("", "~", "null", "Null", "NULL")
_TRUES = ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")
_FALSES = ("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")
_INT_RE = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_OCT_RE = re.compile(r"^[-+]?0[0-7_]+$")
_HEX_RE = re.compile(r"^[-+]?0x[0-9a-fA-F_]+$")
_BIN_RE = re.compile(r"^[-+]?0b[01_]+$")
_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")


def resolve_plain(text):
    """The value go-yaml v2 gives a plain (unquoted) scalar."""
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").replace("_", "")
    if _INT_RE.match(text):
        return sign * int(digits, 10)
    if _HEX_RE.match(text):
        return sign * int(digits[2:], 16)
    if _BIN_RE.match(text):
        return sign * int(digits[2:], 2)
    if _OCT_RE.match(text):
        return sign * int(digits, 8)
    if _FLOAT_RE.match(text) and any(ch.isdigit() for ch in text):
        return float(text.replace("_", ""))
    if text in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"):
        return float("inf")
    if text in ("-.inf", "-.Inf", "-.INF"):
        return float("-inf")
    if text in (".nan", ".NaN", ".NAN"):
        return float("nan")
    return text


_CORE_TAGS = {
    "!!str": lambda text, quoted: text,
    "!!int": lambda text, quoted: int(text, 0),
    "!!float": lambda text, quoted: float(text),
    "!!bool": lambda text, quoted: resolve_plain(text) if resolve_plain(text) in (True, False) else _bad_tag("!!bool", text),
    "!!null": lambda text, quoted: None,
}


def _bad_tag(tag, text):
    raise YamlError("cannot decode %r as %s" % (text, tag))


class _Line:
    __slots__ = ("number", "indent", "text")

    def __init__(self, number, indent, text):
        self.number = number
        self.indent = indent
        self.text = text


def _strip_comment(text):
    """The line without a trailing comment, minding quotes."""
    quote = None
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                if quote == "'" and text[index + 1:index + 2] == "'":
                    continue
                quote = None
            elif char == "\\" and quote == '"':
                continue
        elif char in ("'", '"') and (index == 0 or text[index - 1] in " \t[{,:-"):
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index].rstrip()
    return text.rstrip()


def _split_documents(text):
    documents, current, explicit = [], [], False
    for raw in text.replace("\r\n", "\n").split("\n"):
        stripped = raw.rstrip()
        if stripped == "---" or stripped.startswith("--- ") or stripped.startswith("---\t"):
            if current or explicit:
                documents.append(current)
            current, explicit = [], True
            rest = _strip_comment(stripped[3:]).strip()
            if rest:
                current.append(rest)
            continue
        if stripped == "...":
            documents.append(current)
            current, explicit = [], False
            continue
        if raw.startswith("%"):
            continue
        current.append(raw)
    if current or explicit:
        documents.append(current)
    return documents


class _Parser:
    def __init__(self, raw_lines, first_number):
        self.raw = raw_lines
        self.first_number = first_number
        self.lines = []
        for offset, raw in enumerate(raw_lines):
            if "\t" in raw[:len(raw) - len(raw.lstrip())]:
                raise YamlError("line %d: found a tab character where indentation is expected" % (first_number + offset))
            self.lines.append(raw)
        self.pos = 0

    # -- line helpers -------------------------------------------------------
    def _line(self, index):
        raw = self.raw[index]
        text = _strip_comment(raw)
        indent = len(raw) - len(raw.lstrip(" "))
        return _Line(self.first_number + index, indent, text.strip())

    def _skip_blank(self):
        while self.pos < len(self.raw) and not self._line(self.pos).text:
            self.pos += 1

    def _peek(self):
        self._skip_blank()
        if self.pos >= len(self.raw):
            return None
        return self._line(self.pos)

    def error(self, number, message):
        return YamlError("line %d: %s" % (number, message))

    # -- documents ------------------------------------------------------------
    def parse_document(self):
        line = self._peek()
        if line is None:
            return None
        value = self.parse_node(line.indent, line.number)
        rest = self._peek()
        if rest is not None:
            raise self.error(rest.number, "did not find expected key (bad indentation?)")
        return value

    def parse_node(self, indent, number):
        line = self._peek()
        if line is None or line.indent < indent:
            return None
        if line.text.startswith("- ") or line.text == "-":
            return self.parse_sequence(line.indent)
        if self._mapping_key(line.text) is not None:
            return self.parse_mapping(line.indent)
        return self.parse_multiline_scalar(line.indent)

    # -- mappings -------------------------------------------------------------
    @staticmethod
    def _mapping_key(text):
        """(key, quoted, rest) when text starts a `key: ...` entry, else None."""
        if text.startswith(("'", '"')):
            quote = text[0]
            end = 1
            while end < len(text):
                if text[end] == quote:
                    if quote == "'" and text[end + 1:end + 2] == "'":
                        end += 2
                        continue
                    break
                if text[end] == "\\" and quote == '"':
                    end += 1
                end += 1
            after = text[end + 1:]
            if after.startswith(":") and (len(after) == 1 or after[1] in " \t"):
                return (_unquote(text[:end + 1]), True, after[1:].strip())
            return None
        if text.startswith(("[", "{", "&", "*", "!", "|", ">", "?")):
            if text.startswith("? "):
                raise YamlError("complex mapping keys ('? ') are not supported")
            if text.startswith(("&", "*")):
                raise YamlError("anchors and aliases are not supported by the stand-in YAML reader: %s" % text)
            return None
        match = re.match(r"^([^\s][^:]*?|[^\s]*?)\s*:(\s+|$)(.*)$", text)
        if not match:
            # keys may contain ':' not followed by a space (e.g. a URL), find the first ': '
            index = text.find(": ")
            if index > 0 and not text.startswith("- "):
                return (text[:index].rstrip(), False, text[index + 2:].strip())
            if text.endswith(":") and not text.startswith("- "):
                return (text[:-1].rstrip(), False, "")
            return None
        key = match.group(1)
        if key.startswith("- ") or key == "-":
            return None
        return (key, False, match.group(3).strip())

    def parse_mapping(self, indent):
        result = {}
        while True:
            line = self._peek()
            if line is None or line.indent < indent:
                break
            if line.indent > indent:
                raise self.error(line.number, "mapping values are not allowed in this context (bad indentation)")
            entry = self._mapping_key(line.text)
            if entry is None:
                if line.text.startswith("- "):
                    break
                raise self.error(line.number, "could not find expected ':' in %r" % line.text)
            key, quoted, rest = entry
            key = key if quoted else resolve_plain(key)
            if isinstance(key, (dict, list)):
                raise self.error(line.number, "complex keys are not supported")
            key = _key_string(key)
            if key in result:
                raise self.error(line.number, 'key "%s" already set in map' % key)
            self.pos += 1
            result[key] = self.parse_value(rest, indent, line.number, in_mapping=True)
        return result

    # -- sequences --------------------------------------------------------------
    def parse_sequence(self, indent):
        result = []
        while True:
            line = self._peek()
            if line is None or line.indent < indent:
                break
            if line.indent > indent:
                raise self.error(line.number, "bad indentation of a sequence entry")
            if not (line.text.startswith("- ") or line.text == "-"):
                break
            rest = line.text[1:].strip()
            item_indent = line.indent + (len(line.text) - len(line.text[1:].lstrip())) if rest else indent + 2
            if rest and (self._mapping_key(rest) is not None or rest.startswith("- ") or rest == "-"):
                # compact nested collection: rewrite this line as its content at the deeper indent
                self.raw[self.pos] = " " * item_indent + rest
                result.append(self.parse_node(item_indent, line.number))
            else:
                self.pos += 1
                result.append(self.parse_value(rest, indent, line.number, in_mapping=False))
        return result

    # -- values -----------------------------------------------------------------
    def parse_value(self, rest, parent_indent, number, in_mapping):
        tag = None
        if rest.startswith("!"):
            tag, _sep, rest = rest.partition(" ")
            rest = rest.strip()
            if tag not in _CORE_TAGS and tag not in ("!!map", "!!seq"):
                raise self.error(number, "tag %s is not supported by the stand-in YAML reader" % tag)
        if rest.startswith(("&", "*")):
            raise self.error(number, "anchors and aliases are not supported by the stand-in YAML reader")
        if rest.startswith(("|", ">")):
            return self.parse_block_scalar(rest, parent_indent, number)
        if rest.startswith(("[", "{")):
            text = rest
            while not _flow_complete(text):
                if self.pos >= len(self.raw):
                    raise self.error(number, "unterminated flow collection")
                text += " " + _strip_comment(self.raw[self.pos]).strip()
                self.pos += 1
            value, end = _parse_flow(text, 0, number)
            if text[end:].strip():
                raise self.error(number, "unexpected text after a flow collection: %r" % text[end:])
            return value
        if rest == "":
            line = self._peek()
            if line is None:
                return None
            if line.indent > parent_indent:
                return self.parse_node(line.indent, line.number)
            if in_mapping and line.indent == parent_indent and (line.text.startswith("- ") or line.text == "-"):
                return self.parse_sequence(parent_indent)
            return None
        if rest.startswith(('"', "'")):
            text = rest
            while not _quoted_complete(text):
                if self.pos >= len(self.raw):
                    raise self.error(number, "unterminated quoted scalar")
                text += " " + self.raw[self.pos].strip()
                self.pos += 1
            end = _quoted_end(text)
            if text[end:].strip():
                raise self.error(number, "unexpected text after a quoted scalar: %r" % text[end:])
            value = _unquote(text[:end])
            return _CORE_TAGS[tag](value, True) if tag in _CORE_TAGS else value
        # plain scalar, possibly continued on more-indented lines
        parts = [rest]
        while self.pos < len(self.raw):
            line = self._line(self.pos)
            if not line.text or line.indent <= parent_indent or self._mapping_key(line.text) is not None or line.text.startswith("- "):
                break
            parts.append(line.text)
            self.pos += 1
        text = " ".join(parts)
        if ": " in text and in_mapping:
            raise self.error(number, "mapping values are not allowed in this context")
        return _CORE_TAGS[tag](text, False) if tag in _CORE_TAGS else resolve_plain(text)

    def parse_multiline_scalar(self, indent):
        line = self._peek()
        self.pos += 1
        return self.parse_value(line.text, indent - 1, line.number, in_mapping=False)

    def parse_block_scalar(self, header, parent_indent, number):
        match = re.match(r"^([|>])([+-]?)([1-9]?)([+-]?)$", header)
        if not match:
            raise self.error(number, "invalid block scalar header %r" % header)
        style, chomp, explicit = match.group(1), match.group(2) or match.group(4), match.group(3)
        lines = []
        block_indent = parent_indent + int(explicit) if explicit else None
        while self.pos < len(self.raw):
            raw = self.raw[self.pos]
            if not raw.strip():
                lines.append("")
                self.pos += 1
                continue
            current = len(raw) - len(raw.lstrip(" "))
            if block_indent is None:
                if current <= parent_indent:
                    break
                block_indent = current
            if current < block_indent:
                break
            lines.append(raw[block_indent:])
            self.pos += 1
        trailing = 0
        while lines and lines[-1] == "":
            lines.pop()
            trailing += 1
        if style == "|":
            text = "\n".join(lines)
        else:
            text, previous_blank = "", True
            for item in lines:
                if item == "":
                    text += "\n"
                    previous_blank = True
                elif item.startswith(" "):
                    text += ("\n" if text and not text.endswith("\n") else "") + item + "\n"
                    previous_blank = True
                else:
                    text += ("" if previous_blank else " ") + item
                    previous_blank = False
            text = text.rstrip("\n") if not text.endswith("\n\n") else text
        if not lines:
            return ""
        if chomp == "-":
            return text.rstrip("\n") if style == ">" else text
        if chomp == "+":
            return text + "\n" + "\n" * trailing
        return text.rstrip("\n") + "\n"


def _key_string(key):
    """Mapping keys become JSON object keys, as sigs.k8s.io/yaml converts them."""
    if key is None:
        return "null"
    if key is True:
        return "true"
    if key is False:
        return "false"
    return str(key)


def _quoted_end(text):
    quote = text[0]
    index = 1
    while index < len(text):
        char = text[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            if quote == "'" and text[index + 1:index + 2] == "'":
                index += 2
                continue
            return index + 1
        index += 1
    return -1


def _quoted_complete(text):
    return _quoted_end(text) != -1


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "/": "/", " ": " ", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "v": "\v"}


def _unquote(text):
    quote, body = text[0], text[1:-1]
    if quote == "'":
        return body.replace("''", "'")
    out, index = [], 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        code = body[index + 1:index + 2]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            index += 2
        elif code in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[code]
            out.append(chr(int(body[index + 2:index + 2 + width], 16)))
            index += 2 + width
        else:
            raise YamlError("found unknown escape character \\%s" % code)
    return "".join(out)


def _flow_complete(text):
    depth, quote = 0, None
    for index, char in enumerate(text):
        if quote:
            if char == quote and not (quote == '"' and text[index - 1] == "\\"):
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return depth <= 0


def _parse_flow(text, index, number):
    """A flow collection or scalar starting at text[index]; returns (value, index after it)."""
    index = _skip_spaces(text, index)
    if text[index] == "[":
        items, index = [], index + 1
        while True:
            index = _skip_spaces(text, index)
            if text[index] == "]":
                return items, index + 1
            value, index = _parse_flow(text, index, number)
            items.append(value)
            index = _skip_spaces(text, index)
            if text[index] == ",":
                index += 1
            elif text[index] != "]":
                raise YamlError("line %d: did not find expected ',' or ']'" % number)
    if text[index] == "{":
        mapping, index = {}, index + 1
        while True:
            index = _skip_spaces(text, index)
            if text[index] == "}":
                return mapping, index + 1
            key, index = _parse_flow_scalar(text, index, number, stop=":,}")
            index = _skip_spaces(text, index)
            value = None
            if text[index] == ":":
                value, index = _parse_flow(text, index + 1, number)
                index = _skip_spaces(text, index)
            key = _key_string(key)
            if key in mapping:
                raise YamlError('line %d: key "%s" already set in map' % (number, key))
            mapping[key] = value
            if text[index] == ",":
                index += 1
            elif text[index] != "}":
                raise YamlError("line %d: did not find expected ',' or '}'" % number)
    return _parse_flow_scalar(text, index, number, stop=",]}")


def _parse_flow_scalar(text, index, number, stop):
    index = _skip_spaces(text, index)
    if text[index] in "\"'":
        end = _quoted_end(text[index:])
        if end == -1:
            raise YamlError("line %d: unterminated quoted scalar" % number)
        return _unquote(text[index:index + end]), index + end
    if text[index] in "&*!":
        raise YamlError("line %d: anchors, aliases and tags are not supported in flow collections" % number)
    end = index
    while end < len(text) and text[end] not in stop:
        if text[end] == ":" and ":" in stop and (end + 1 >= len(text) or text[end + 1] in " ,}"):
            break
        end += 1
    return resolve_plain(text[index:end].strip()), end


def _skip_spaces(text, index):
    while index < len(text) and text[index] in " \t":
        index += 1
    if index >= len(text):
        raise YamlError("unexpected end of a flow collection")
    return index


def load_all(text):
    """Every document of a YAML stream, as Python values (a document with no content is None)."""
    documents, number = [], 1
    for lines in _split_documents(text):
        parser = _Parser(list(lines), number)
        documents.append(parser.parse_document())
        number += len(lines) + 1
    return documents


def load(text):
    documents = load_all(text)
    if len(documents) > 1:
        raise YamlError("expected a single document, found %d" % len(documents))
    return documents[0] if documents else None


# -- writing --------------------------------------------------------------------------------------
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./:@=+-]*$")


def _scalar(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if _PLAIN_SAFE.match(text) and resolve_plain(text) == text and not text.endswith(":"):
        return text
    return json.dumps(text)


def _dump(value, indent, lines, prefix):
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            lines.append(prefix + "{}")
            return
        first = True
        for key, item in value.items():
            head = (prefix if first else pad) + _scalar(str(key)) + ":"
            first = False
            if isinstance(item, dict) and item:
                lines.append(head)
                _dump(item, indent + 2, lines, " " * (indent + 2))
            elif isinstance(item, list) and item:
                lines.append(head)
                _dump(item, indent, lines, pad)
            elif isinstance(item, str) and "\n" in item:
                lines.append(head + " |" + ("-" if not item.endswith("\n") else ""))
                for part in item.rstrip("\n").split("\n"):
                    lines.append(pad + "  " + part if part else "")
            else:
                lines.append(head + " " + (_scalar(item) if not isinstance(item, (dict, list)) else ("{}" if isinstance(item, dict) else "[]")))
        return
    if isinstance(value, list):
        if not value:
            lines.append(prefix + "[]")
            return
        for position, item in enumerate(value):
            _dump(item, indent + 2, lines, (prefix if position == 0 else pad) + "- ")
        return
    if isinstance(value, str) and "\n" in value:
        lines.append(prefix + json.dumps(value))
        return
    lines.append(prefix + _scalar(value))


def dump(value):
    """Block-style YAML that load() (and any YAML 1.1 or 1.2 reader) reads back as value."""
    lines = []
    _dump(value, 0, lines, "")
    return "\n".join(lines) + "\n"


def dump_all(values):
    return "---\n".join(dump(value) for value in values)
