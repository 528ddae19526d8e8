"""Load labelled traces from JSON, JSONL, CSV or Hugging Face ``datasets`` into a :class:`Dataset`.

Every problem in the input is a :class:`~afscope.errors.DataError` whose message starts with the
file, the record index (0-based, in file order) and the field, then says what was expected, so a
researcher can open the file and fix it. Nothing is guessed: an unknown label is an error unless
``label_map`` maps it, and non-string labels (``true``, ``1``) must be mapped explicitly.

Field conventions (from the seeds' datasets):

* ``text`` is the trace; ``label`` the fine category. Where a record also has a ``class`` field
  with a known label (the af-detection benchmark: ``label=hard_negative``,
  ``class=compliant_hard_negative``), ``class`` is the finer category and wins; the coarse label is
  kept in ``extra["original_label"]``. ``category_field`` overrides both.
* ``source``, ``pattern`` and ``prompt`` become record attributes; every other field is kept in
  ``Record.extra`` (nothing is dropped). Kept fields whose names clash with the keys that
  ``Record.to_dict`` writes itself (``id``, ``text``, ``label``, ``is_af``) are stored as
  ``original_<name>`` so a JSONL round trip is lossless.
* The record id is the ``id`` field (string or integer) when present and unique in the file, else
  ``"<dataset name>:<index>"``, with the index counted before deduplication so ids are stable.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from afscope.data.dataset import Dataset
from afscope.data.records import NEGATIVE_LABELS, POSITIVE_LABELS, Record, binary_label
from afscope.errors import DataError, where

logger = logging.getLogger(__name__)

OnDuplicate = Literal["warn", "error", "drop"]
ON_DUPLICATE: tuple[str, ...] = ("warn", "error", "drop")
FILE_FORMATS: dict[str, str] = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
                                ".csv": "csv"}
CLASS_FIELD = "class"
ID_FIELD = "id"
ATTRIBUTE_FIELDS = ("source", "pattern", "prompt")
# Keys that Record.to_dict() writes itself; a kept source field of that name is renamed.
RESERVED_KEYS = frozenset({"id", "text", "label", "is_af"})
_CSV_FIELD_LIMIT = 2**31 - 1  # the csv module's default (128 KiB) rejects long traces

# (record index, object, line number or None)
RawRow = tuple[int, Any, "int | None"]


def _loc(path: object, index: int | None = None, field: str | None = None,
         line: int | None = None) -> str:
    """``where()`` plus the line number for line-oriented formats."""
    text = where(path, index, field)
    return f"{text} (line {line})" if line is not None else text


# -- decoding --------------------------------------------------------------------------------------
def _decode(path: Path, data: bytes) -> str:
    """Strict UTF-8 (a leading BOM is allowed); a bad byte is reported by offset and line."""
    offset = 0
    if data.startswith(codecs.BOM_UTF8):
        offset = len(codecs.BOM_UTF8)
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError as e:
        pos = offset + e.start
        line = data.count(b"\n", 0, pos) + 1
        bad = data[pos:pos + 1].hex()
        raise DataError(f"{path}: byte offset {pos} (line {line}): invalid UTF-8 byte 0x{bad}; "
                        "expected a UTF-8 encoded file") from None


def _truncated(text: str, e: json.JSONDecodeError) -> bool:
    """The parser ran off the end of the input: the file (or line) was cut short."""
    return e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string")


def _json_error(path: Path, text: str, e: json.JSONDecodeError) -> DataError:
    hint = " (the file looks truncated)" if _truncated(text, e) else ""
    return DataError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}{hint}")


def _read_json(path: Path) -> list[RawRow]:
    text = _decode(path, path.read_bytes())
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise _json_error(path, text, e) from None
    if isinstance(obj, dict):
        if "samples" not in obj:
            keys = ", ".join(repr(k) for k in list(obj)[:10]) or "none"
            raise DataError(f"{path}: expected a list of records or an object with a 'samples' "
                            f"list; got an object with keys {keys}")
        samples = obj["samples"]
        if not isinstance(samples, list):
            raise DataError(f"{where(path, field='samples')}: expected a list of records, got "
                            f"{type(samples).__name__}")
    elif isinstance(obj, list):
        samples = obj
    else:
        raise DataError(f"{path}: expected a list of records or an object with a 'samples' list; "
                        f"got {type(obj).__name__}")
    return [(i, r, None) for i, r in enumerate(samples)]


def _read_jsonl(path: Path) -> list[RawRow]:
    text = _decode(path, path.read_bytes())
    rows: list[RawRow] = []
    # split on "\n" only: str.splitlines() would also split on U+2028 inside JSON strings
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        index = len(rows)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            hint = " (the line looks truncated)" if _truncated(line, e) else ""
            raise DataError(f"{_loc(path, index, line=lineno)}: invalid JSON at column {e.colno}: "
                            f"{e.msg}{hint}") from None
        rows.append((index, obj, lineno))
    return rows


def _read_csv(path: Path, required: list[str]) -> list[RawRow]:
    text = _decode(path, path.read_bytes())
    old_limit = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
        except csv.Error as e:
            raise DataError(f"{path}: line 1: malformed CSV header: {e}") from None
        expected = ", ".join(repr(c) for c in required)
        if header is None or not any(h.strip() for h in header):
            raise DataError(f"{path}: empty CSV file; expected a header row naming the columns "
                            f"{expected}")
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            got = ", ".join(repr(h) for h in header)
            raise DataError(f"{path}: CSV header must name the columns {expected} (missing: "
                            f"{', '.join(repr(c) for c in missing)}; header: {got}); set "
                            "text_field/label_field if your columns are named differently")
        rows: list[RawRow] = []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise DataError(f"{_loc(path, len(rows), line=reader.line_num)}: malformed CSV: "
                                f"{e}") from None
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            index = len(rows)
            if len(row) != len(header):
                raise DataError(f"{_loc(path, index, line=reader.line_num)}: expected "
                                f"{len(header)} columns as in the header, got {len(row)}")
            rows.append((index, dict(zip(header, row)), reader.line_num))
        return rows
    finally:
        csv.field_size_limit(old_limit)


def _read_hf(source: str, hf_dataset: Any, hf_split: str) -> list[RawRow]:
    import datasets as hfds

    if isinstance(hf_dataset, hfds.DatasetDict):
        if hf_split not in hf_dataset:
            raise DataError(f"{source}: no split {hf_split!r}; available splits: "
                            f"{', '.join(sorted(hf_dataset))} (set hf_split)")
        hf_dataset = hf_dataset[hf_split]
    if not isinstance(hf_dataset, hfds.Dataset):
        raise DataError(f"{source}: expected a Hugging Face Dataset, got "
                        f"{type(hf_dataset).__name__}")
    return [(i, dict(row), None) for i, row in enumerate(hf_dataset)]


def _read_hf_dir(path: Path, hf_split: str) -> list[RawRow]:
    import datasets as hfds

    try:
        obj = hfds.load_from_disk(str(path))
    except Exception as e:  # datasets raises FileNotFoundError/ValueError/... for foreign folders
        raise DataError(f"{path}: a directory that is not a Hugging Face dataset saved with "
                        f"save_to_disk ({type(e).__name__}: {e})") from None
    return _read_hf(str(path), obj, hf_split)


def _read_hub(name: str, hf_split: str) -> list[RawRow]:
    try:
        import datasets as hfds

        obj = hfds.load_dataset(name, split=hf_split)
    except Exception as e:  # offline, unknown name, auth, ...: one clear message
        raise DataError(f"{name}: not a local file or directory, and loading it as a Hugging Face "
                        f"hub dataset failed ({type(e).__name__}: {e})") from None
    return _read_hf(name, obj, hf_split)


def _looks_like_path(text: str) -> bool:
    """A missing local path (not found) rather than a hub name (``owner/name``)."""
    p = Path(text)
    if p.suffix.lower() in FILE_FORMATS or text.startswith((".", "/", "~")) or "\\" in text:
        return True
    return str(p.parent) not in (".", "") and p.parent.exists()


# -- records ---------------------------------------------------------------------------------------
def _label_key(value: Any) -> list[str]:
    """Candidate label_map keys for a non-string label: JSON spelling and Python spelling."""
    return list(dict.fromkeys([json.dumps(value), str(value)]))


def _category(value: Any, loc: str, label_map: Mapping[str, int] | None) -> str:
    """The fine category as a string; non-string labels only through ``label_map``."""
    if isinstance(value, str):
        return value
    if label_map and not isinstance(value, (dict, list)):
        for key in _label_key(value):
            if key in label_map:
                return key
    known = ", ".join(sorted(POSITIVE_LABELS | NEGATIVE_LABELS))
    raise DataError(f"{loc}: expected a label string ({known}), got {value!r} "
                    f"({type(value).__name__}); map such values with label_map, e.g. "
                    f"{{'{_label_key(value)[0]}': 1}}")


def _is_known(category: Any, label_map: Mapping[str, int] | None) -> bool:
    return isinstance(category, str) and (
        category in POSITIVE_LABELS or category in NEGATIVE_LABELS
        or bool(label_map and category in label_map))


class _RecordBuilder:
    """Turns raw rows into records with the options of one ``load_dataset`` call."""

    def __init__(self, source: object, name: str, *, text_field: str, label_field: str,
                 category_field: str | None, label_map: Mapping[str, int] | None):
        self.source = source
        self.name = name
        self.text_field = text_field
        self.label_field = label_field
        self.category_field = category_field
        self.label_map = dict(label_map) if label_map else None

    def build(self, index: int, obj: Any, line: int | None) -> tuple[Record, Any]:
        """Return the record and its raw id value (``None`` when the row has no id)."""
        src = self.source

        def loc(field: str | None = None) -> str:
            return _loc(src, index, field, line)

        if not isinstance(obj, dict):
            raise DataError(f"{loc()}: expected a JSON object with fields "
                            f"{self.text_field!r} and {self.label_field!r}, got "
                            f"{type(obj).__name__}")
        # text
        tf = self.text_field
        if tf not in obj:
            raise DataError(f"{loc(tf)}: missing; expected the trace text (fields present: "
                            f"{', '.join(repr(k) for k in list(obj)[:12]) or 'none'})")
        text = obj[tf]
        if not isinstance(text, str):
            raise DataError(f"{loc(tf)}: expected a string, got {type(text).__name__}")
        if not text.strip():
            raise DataError(f"{loc(tf)}: empty or whitespace-only text; expected a trace")

        # fine category: category_field, else a known `class`, else the label field
        consumed = {tf}
        lf = self.label_field
        if self.category_field is not None:
            cf = self.category_field
        elif CLASS_FIELD in obj and _is_known(obj[CLASS_FIELD], self.label_map):
            cf = CLASS_FIELD
        else:
            cf = lf
        if cf not in obj or obj[cf] is None:
            what = "missing" if cf not in obj else "null"
            raise DataError(f"{loc(cf)}: {what}; expected a label ("
                            f"{', '.join(sorted(POSITIVE_LABELS | NEGATIVE_LABELS))})")
        category = _category(obj[cf], loc(cf), self.label_map)
        if not _is_known(category, self.label_map):
            known = ", ".join(sorted(POSITIVE_LABELS | NEGATIVE_LABELS))
            raise DataError(f"{loc(cf)}: unknown label {category!r}; known labels: {known}; map "
                            f"it with label_map in the data config (e.g. {{{category!r}: 0}})")
        label = binary_label(category, self.label_map, location=loc(cf))
        consumed.add(cf)
        mapped = bool(self.label_map and category in self.label_map)

        # a coarse label that contradicts the finer class is a data error, not a choice
        if cf == CLASS_FIELD and lf != CLASS_FIELD and _is_known(obj.get(lf), self.label_map):
            coarse = binary_label(obj[lf], self.label_map)
            if coarse != label:
                raise DataError(f"{loc(lf)}: label {obj[lf]!r} (is_af={coarse}) contradicts "
                                f"field 'class' {category!r} (is_af={label})")
        is_af = obj.get("is_af")
        if (not mapped and isinstance(is_af, (bool, int)) and is_af in (0, 1)
                and int(is_af) != label):
            raise DataError(f"{loc('is_af')}: is_af={is_af!r} contradicts label {category!r} "
                            f"(is_af={label}); fix the record or map the label with label_map")

        # id
        raw_id = obj.get(ID_FIELD)
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
            raise DataError(f"{loc(ID_FIELD)}: expected a string or integer id, got "
                            f"{type(raw_id).__name__}")
        if ID_FIELD in obj:
            consumed.add(ID_FIELD)

        # attributes and extra
        attrs: dict[str, str | None] = {}
        for k in ATTRIBUTE_FIELDS:
            v = obj.get(k)
            if k in obj and k not in consumed and (v is None or isinstance(v, str)):
                if v is not None:
                    attrs[k] = v
                consumed.add(k)  # a null attribute is unset (Record.to_dict writes it as null)
        extra: dict[str, Any] = {}
        for k, v in obj.items():
            if k in consumed:
                continue
            if k == "is_af" and v == label:
                extra[k] = v  # to_dict rewrites it with the same value
            elif k in RESERVED_KEYS:
                extra[f"original_{k}"] = v
            else:
                extra[k] = v
        if isinstance(raw_id, str) and not raw_id.strip():
            raw_id = None  # an empty id is no id
        rid = str(raw_id) if raw_id is not None else f"{self.name}:{index}"
        record = Record(text=text, category=category, label=label, id=rid, extra=extra, **attrs)
        return record, raw_id


def _fix_duplicate_ids(records: list[Record], raw_ids: list[Any], indices: list[int],
                       source: object, name: str) -> list[Record]:
    """Ids must be unique; when the file's ids are not, fall back to positional ids."""
    seen: dict[str, int] = {}
    clash: tuple[int, int, str] | None = None
    for rec, i in zip(records, indices):
        if rec.id in seen:
            clash = (seen[rec.id], i, rec.id)
            break
        seen[rec.id] = i
    if clash is None:
        return records
    logger.warning("%s: record ids are not unique (record %d and record %d share id %r); using "
                   "'%s:<index>' ids and keeping the file's id as 'original_id'",
                   source, clash[0], clash[1], clash[2], name)
    out = []
    for rec, raw, i in zip(records, raw_ids, indices):
        extra = dict(rec.extra)
        if raw is not None:
            extra["original_id"] = raw
        out.append(Record(text=rec.text, category=rec.category, label=rec.label,
                          id=f"{name}:{i}", source=rec.source, pattern=rec.pattern,
                          prompt=rec.prompt, extra=extra))
    return out


def _dedup(records: list[Record], indices: list[int], source: object,
           on_duplicate: str) -> tuple[list[Record], list[int], int]:
    """Apply the duplicate policy; returns kept records, their source indices, #duplicates."""
    first: dict[str, int] = {}
    dup_of: list[tuple[int, int]] = []  # (position, position of first occurrence)
    for pos, rec in enumerate(records):
        h = rec.hash
        if h in first:
            dup_of.append((pos, first[h]))
        else:
            first[h] = pos
    if not dup_of:
        return records, indices, 0
    n = len(dup_of)
    pos, orig = dup_of[0]
    if on_duplicate == "error":
        raise DataError(f"{where(source, indices[pos], 'text')}: duplicate of record "
                        f"{indices[orig]} (same normalized text); {n} duplicate(s) in total. "
                        "Set on_duplicate to 'drop' or 'warn' to load anyway")
    conflicts = [(p, o) for p, o in dup_of if records[p].label != records[o].label]
    if conflicts and on_duplicate == "drop":
        p, o = conflicts[0]
        raise DataError(f"{where(source, indices[p], 'label')}: same text as record {indices[o]} "
                        f"but a different label ({records[p].category!r} vs "
                        f"{records[o].category!r}); {len(conflicts)} such conflict(s). Fix the "
                        "labels or set on_duplicate='warn' to keep every copy")
    if on_duplicate == "warn":
        logger.warning("%s: %d duplicate record(s) by normalized text (first: record %d = record "
                       "%d); keeping them (on_duplicate='warn')", source, n, indices[pos],
                       indices[orig])
        return records, indices, n
    logger.warning("%s: dropped %d duplicate record(s) by normalized text (first: record %d = "
                   "record %d); set on_duplicate='warn' to keep them", source, n, indices[pos],
                   indices[orig])
    drop = {p for p, _ in dup_of}
    keep = [p for p in range(len(records)) if p not in drop]
    return [records[p] for p in keep], [indices[p] for p in keep], n


# -- public ----------------------------------------------------------------------------------------
def detect_format(path_or_name: str | Path) -> str:
    """``json``/``jsonl``/``csv`` by extension, ``hf_disk`` for a folder, else ``hub``."""
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        return "hf_disk"
    if path.is_file():
        fmt = FILE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise DataError(f"{path}: unsupported file type {path.suffix!r}; expected one of "
                            f"{', '.join(sorted(FILE_FORMATS))}, a folder saved by "
                            "datasets.save_to_disk, or a hub dataset name")
        return fmt
    if _looks_like_path(str(path_or_name)):
        raise DataError(f"{path}: file not found")
    return "hub"


def read_jsonl_objects(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of every non-blank line of a JSONL file; a missing file, bad
    UTF-8, invalid JSON or a non-object line is a :class:`DataError` naming the file and line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out = []
    for index, obj, line in _read_jsonl(path):
        if not isinstance(obj, dict):
            raise DataError(f"{_loc(path, index, line=line)}: expected a JSON object, got "
                            f"{type(obj).__name__}")
        out.append((int(line), obj))
    return out


def iter_raw_rows(path_or_name: str | Path, *, fmt: str, required: list[str],
                  hf_split: str = "train") -> Iterator[RawRow]:
    """Raw ``(index, object, line)`` rows of a source, before any record validation."""
    path = Path(path_or_name).expanduser()
    if fmt == "json":
        yield from _read_json(path)
    elif fmt == "jsonl":
        yield from _read_jsonl(path)
    elif fmt == "csv":
        yield from _read_csv(path, required)
    elif fmt == "hf_disk":
        yield from _read_hf_dir(path, hf_split)
    else:
        yield from _read_hub(str(path_or_name), hf_split)


def load_dataset(
    path_or_name: str | Path,
    *,
    name: str | None = None,
    text_field: str = "text",
    label_field: str = "label",
    category_field: str | None = None,
    label_map: Mapping[str, int] | None = None,
    eval_only: bool = False,
    hf_split: str = "train",
    on_duplicate: OnDuplicate = "drop",
    max_chars: int | None = None,
) -> Dataset:
    """Load and validate a labelled dataset.

    Parameters
    ----------
    path_or_name:
        ``.json`` (``{"samples": [...]}`` or a bare list), ``.jsonl``, ``.csv`` (with a header), a
        folder written by ``datasets.save_to_disk``, or a Hugging Face hub name (needs network).
    name:
        Dataset name for ids and manifests; defaults to the file stem / folder / hub name.
    text_field, label_field:
        Field names of the trace and of its label.
    category_field:
        Field holding the fine category; by default a known ``class`` field, else ``label_field``.
    label_map:
        ``{label: 0|1}`` for labels outside the built-in vocabulary (also non-string labels, by
        their JSON spelling: ``{"true": 1, "0": 0}``). Unknown labels are an error.
    eval_only:
        Declare the dataset evaluation-only (see :class:`~afscope.data.leakage.LeakageGuard`).
    hf_split:
        Split to read from a ``DatasetDict`` or the hub.
    on_duplicate:
        Records with the same normalized text: ``"drop"`` keeps the first and logs a warning with
        the count (duplicates with different binary labels are an error then), ``"warn"`` keeps all,
        ``"error"`` fails naming both records.
    max_chars:
        Log a warning (never fail) for texts longer than this: long traces are legal but will be
        truncated by a model's context window.

    Raises
    ------
    DataError
        On any malformed input; the message names file, record index (0-based) and field.
    """
    if on_duplicate not in ON_DUPLICATE:
        raise DataError(f"on_duplicate must be one of {', '.join(ON_DUPLICATE)}, got "
                        f"{on_duplicate!r}")
    fmt = detect_format(path_or_name)
    path = Path(path_or_name).expanduser()
    source: object = path if fmt != "hub" else str(path_or_name)
    if name is None:
        name = path.stem if fmt in ("json", "jsonl", "csv") else (
            path.name if fmt == "hf_disk" else str(path_or_name))
    required = [text_field, category_field or label_field]
    rows = list(iter_raw_rows(path_or_name, fmt=fmt, required=required, hf_split=hf_split))
    if not rows:
        raise DataError(f"{source}: no records; expected at least one labelled record")

    builder = _RecordBuilder(source, name, text_field=text_field, label_field=label_field,
                             category_field=category_field, label_map=label_map)
    records: list[Record] = []
    raw_ids: list[Any] = []
    for index, obj, line in rows:
        rec, raw_id = builder.build(index, obj, line)
        records.append(rec)
        raw_ids.append(raw_id)
    indices = [index for index, _, _ in rows]

    if max_chars is not None:
        long = [i for i, r in zip(indices, records) if len(r.text) > max_chars]
        if long:
            logger.warning("%s: %d text(s) longer than max_chars=%d (first: record %d)", source,
                           len(long), max_chars, long[0])

    n_raw = len(records)
    kept, kept_idx, n_dup = _dedup(records, indices, source, on_duplicate)
    raw_id_of = dict(zip(indices, raw_ids))
    kept_raw_ids = [raw_id_of[i] for i in kept_idx]
    kept = _fix_duplicate_ids(kept, kept_raw_ids, kept_idx, source, name)
    meta = {"format": fmt, "n_raw": n_raw, "duplicates": n_dup,
            "duplicates_dropped": n_dup if on_duplicate == "drop" else 0}
    return Dataset(name=name, records=kept, path=str(source) if fmt == "hub" else path,
                   eval_only=eval_only, meta=meta)
