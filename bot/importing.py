"""Reading the two files the office imports: the org sheet and the periodic task ledger (任务台账).

`duban org import FILE` and `duban items import FILE.xlsx` (DESIGN §4) both start here. This module only
parses and checks rows; it touches no database. The caller resolves unit and person names against the
database, shows the report, and commits only when the import is `ok` — so a file with one wrong row changes
nothing, and the office fixes the sheet and imports it again.

Choices worth knowing (the office fills these sheets by hand, in Excel or WPS):

- Columns are found by header name (Chinese or English, spaces, `*` marks and notes in brackets ignored),
  so column order and extra columns such as 序号 or 备注 do not matter. The header is the first row that
  names the required columns among the first few non-blank rows, so a title row above it is tolerated; line
  numbers are always the row numbers Excel shows.
- A row whose recognised columns are all blank is skipped: templates often come with 序号 pre-filled.
- CSV (.csv, or .txt as Excel saves "Unicode text") may be UTF-8 with or without BOM, GB18030/GBK (what
  Excel on Chinese Windows writes) or UTF-16; comma- or tab-separated.
- In the task ledger, cells merged down several rows (a 工作要点 or 分管校领导 spanning tasks) count for every
  row they cover. The org sheet is read in openpyxl's streaming mode, which cannot see merges, so there a
  merged 单位 shows up as an empty one and is reported.
- 分管单位 names are checked against the 单位 column of the same file plus `known_units`, which the caller fills
  with the unit names already in the database. `OrgImport.referenced_units` lists them all for a final check.
- Every problem of a row is reported, not only the first, so one round of fixes is usually enough.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import pathlib
import re
import unicodedata
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from domain.errors import CONFIDENTIAL_MESSAGE, ValidationError
from domain.items import TEXT_MAX, TITLE_MAX
from domain.roles import Channel, Role, parse_roles

NAME_MAX = 50  # 姓名, 分管校领导
UNIT_MAX = 100  # 单位名称
CATEGORY_MAX = 100  # 类别 (Item.create allows 100)
ID_MAX = 64
PREVIEW_TASK_WIDTH = 30
HEADER_SEARCH_ROWS = 10  # non-blank rows searched for the header (title rows above it are common)

WECOM_ID_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
DINGTALK_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

_SEPARATORS_RE = re.compile(r"[、,，;；\r\n]+")
_EDGE_SPACE_RE = re.compile(r"^[\s\u200b\ufeff]+|[\s\u200b\ufeff]+$")
_HEADER_NOTE_RE = re.compile(r"[（(][^）)]*[）)]")
_HEADER_NOISE_RE = re.compile(r"[\s\u200b\ufeff_\-*＊:：]+")

_CSV_SUFFIXES = {".csv", ".txt"}
_XLSX_SUFFIXES = {".xlsx", ".xlsm"}

_ROLE_HINT = "应为 学校办公室、校领导、主要负责人、办理人（或 office、leader、principal、handler）"
_CHANNEL_WORDS = {
    "企业微信": Channel.WECOM,
    "wecom": Channel.WECOM,
    "钉钉": Channel.DINGTALK,
    "dingtalk": Channel.DINGTALK,
}
_CHANNEL_LABELS = {Channel.WECOM: "企业微信", Channel.DINGTALK: "钉钉"}

# 第六条 1, 第十三条: these never enter the system. 绝密 is added to the words of the brief for completeness.
_CONFIDENTIAL_WORDS = ("涉密", "机密", "秘密", "绝密")
_NOT_CONFIDENTIAL_LEVELS = {"非密", "公开", "无", "不涉密", "非涉密"}


class ImportFileError(ValidationError):
    """The file as a whole cannot be used (wrong type, unreadable, empty, header missing); no row was read."""


def split_names(text: str) -> tuple[str, ...]:
    """Several names in one cell, as the office writes them: separated by `、` `,` `，` (also `;` `；` or a line
    break inside the cell). Blanks are dropped and repeats removed, keeping the first order, because a unit
    named twice is still one unit."""
    parts = (_clean(p) for p in _SEPARATORS_RE.split(text or ""))
    return tuple(dict.fromkeys(p for p in parts if p))


# ---- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One problem in one row; `line` is the row number Excel shows (the header is usually line 1)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"第 {self.line} 行：{self.message}"


@dataclass(frozen=True)
class OrgRow:
    """One person of the org sheet, checked; names (unit, units in charge) are still names, not ids."""

    line: int
    unit: str
    name: str
    roles: frozenset[Role]
    wecom_id: str | None
    dingtalk_id: str | None
    units_in_charge: tuple[str, ...]
    preferred_channel: str  # Channel value: "wecom" or "dingtalk"


@dataclass
class OrgImport:
    """The checked org sheet. Commit only when `ok`: rows with problems are left out of `rows`."""

    rows: list[OrgRow]
    errors: list[RowError]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def units(self) -> frozenset[str]:
        """Unit names of the 单位 column (of the rows without problems): the units the caller creates."""
        return frozenset(r.unit for r in self.rows)

    @property
    def referenced_units(self) -> frozenset[str]:
        """Every unit named in a 分管单位 cell, for the caller to resolve against the database."""
        return frozenset(u for r in self.rows for u in r.units_in_charge)

    def report(self) -> str:
        if self.ok:
            return f"检查通过：共 {len(self.rows)} 人，{len(self.units)} 个单位。"
        return _error_report(self.errors)


@dataclass(frozen=True)
class TaskRow:
    """One task of the ledger. It becomes a periodic item draft: `task` is its title, `key_point` its content."""

    line: int
    key_point: str
    task: str
    lead_unit: str
    co_units: tuple[str, ...]
    leader: str
    deadline: dt.date
    category: str

    @property
    def title(self) -> str:
        return self.task

    @property
    def content(self) -> str:
        return self.key_point


@dataclass
class LedgerImport:
    """The checked task ledger. Commit only when `ok`: rows with problems are left out of `rows`."""

    rows: list[TaskRow]
    errors: list[RowError]

    @property
    def ok(self) -> bool:
        return not self.errors

    def report(self) -> str:
        if self.ok:
            return f"检查通过：共 {len(self.rows)} 项任务。"
        return _error_report(self.errors)

    def preview(self) -> str:
        """What the office sees before `--commit`: one line per good row, then the problems."""
        bad_lines = {e.line for e in self.errors}
        lines = [f"任务台账预览：可导入 {len(self.rows)} 项，有问题的 {len(bad_lines)} 行。"]
        if self.rows:
            lines.append("行号 | 任务 | 牵头单位 | 完成时限")
            for r in self.rows:
                lines.append(f"{r.line} | {_truncate(r.task, PREVIEW_TASK_WIDTH)} | {r.lead_unit} | {r.deadline.isoformat()}")
        if self.errors:
            lines.append(_error_report(self.errors))
        else:
            lines.append("没有发现问题，确认无误后请加 --commit 导入为待审核的草稿。")
        return "\n".join(lines)


def _error_report(errors: Sequence[RowError]) -> str:
    ordered = sorted(errors, key=lambda e: e.line)
    return "\n".join([f"发现 {len(ordered)} 处问题，请修改后重新导入："] + [str(e) for e in ordered])


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- org sheet ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    key: str
    label: str  # the Chinese header, for messages
    aliases: tuple[str, ...]


_ORG_COLUMNS = (
    _Column("unit", "单位", ("单位", "所在单位", "unit")),
    _Column("name", "姓名", ("姓名", "name")),
    _Column("roles", "角色", ("角色", "roles", "role")),
    _Column("wecom_id", "企业微信ID", ("企业微信ID", "企业微信userid", "企业微信账号", "wecom_id", "wecom_userid")),
    _Column("dingtalk_id", "钉钉ID", ("钉钉ID", "钉钉userid", "钉钉账号", "dingtalk_id", "dingtalk_userid")),
    _Column("units_in_charge", "分管单位", ("分管单位", "units_in_charge")),
    _Column("preferred_channel", "首选渠道", ("首选渠道", "preferred_channel")),
)


def parse_org_file(path: pathlib.Path, *, known_units: Collection[str] = ()) -> OrgImport:
    """Read and check `duban org import FILE` (CSV or XLSX).

    Required columns: 单位, 姓名, 角色 and at least one of 企业微信ID / 钉钉ID (an office on one platform need
    not keep an empty column for the other). `known_units` are unit names already in the database; a
    分管单位 naming neither one of them nor a unit of the 单位 column is a row error.
    """
    table = _read_table(pathlib.Path(path), fill_merged=False)
    header_at, cols = _locate_header(
        table, _ORG_COLUMNS, required=("unit", "name", "roles"), one_of=("wecom_id", "dingtalk_id")
    )

    problems: dict[int, list[str]] = {}
    candidates: list[OrgRow] = []
    seen_wecom: dict[str, int] = {}
    seen_dingtalk: dict[str, int] = {}
    seen_person: dict[tuple[str, str], int] = {}
    units_in_file: set[str] = set()
    leader_lines: list[OrgRow] = []

    for line, cells in table[header_at + 1 :]:
        get = _getter(cells, cols)
        if not any(get(k) for k in cols):
            continue
        errs = problems.setdefault(line, [])
        unit, name = get("unit"), get("name")
        wecom_id, dingtalk_id = get("wecom_id"), get("dingtalk_id")

        if not unit:
            errs.append("单位不能为空。")
        elif len(unit) > UNIT_MAX:
            errs.append(f"单位名称过长（不超过 {UNIT_MAX} 字）。")
        else:
            units_in_file.add(unit)
        if not name:
            errs.append("姓名不能为空。")
        elif len(name) > NAME_MAX:
            errs.append(f"姓名过长（不超过 {NAME_MAX} 字）。")

        roles, role_error = _roles(get("roles"))
        if role_error:
            errs.append(role_error)

        if not wecom_id and not dingtalk_id:
            errs.append("企业微信ID和钉钉ID至少要填写一个。")
        if wecom_id:
            if not WECOM_ID_RE.fullmatch(wecom_id):
                errs.append(f"企业微信ID“{_truncate(wecom_id, 70)}”格式不正确，应为 1–{ID_MAX} 位字母、数字或 _ . @ -。")
            key = wecom_id.lower()  # WeCom userids are case-insensitive
            if key in seen_wecom:
                errs.append(f"企业微信ID“{wecom_id}”与第 {seen_wecom[key]} 行重复。")
            else:
                seen_wecom[key] = line
        if dingtalk_id:
            if not DINGTALK_ID_RE.fullmatch(dingtalk_id):
                errs.append(f"钉钉ID“{_truncate(dingtalk_id, 70)}”格式不正确，应为 1–{ID_MAX} 位字母、数字或 _ -。")
            if dingtalk_id in seen_dingtalk:
                errs.append(f"钉钉ID“{dingtalk_id}”与第 {seen_dingtalk[dingtalk_id]} 行重复。")
            else:
                seen_dingtalk[dingtalk_id] = line

        if unit and name:
            if (unit, name) in seen_person:
                errs.append(f"{unit}的“{name}”与第 {seen_person[(unit, name)]} 行重复。")
            else:
                seen_person[(unit, name)] = line

        channel_text = get("preferred_channel")
        channel = _CHANNEL_WORDS.get(channel_text.lower(), None) if channel_text else Channel.WECOM
        if channel is None:
            errs.append(f"首选渠道“{channel_text}”无法识别，应为 企业微信 或 钉钉。")
        elif channel_text:
            bound = wecom_id if channel is Channel.WECOM else dingtalk_id
            if not bound:
                label = _CHANNEL_LABELS[channel]
                errs.append(f"首选渠道为{label}，但没有填写{label}ID。")

        in_charge = split_names(get("units_in_charge"))
        if in_charge and not role_error and Role.LEADER not in roles:
            errs.append("只有校领导才能填写分管单位。")

        row = OrgRow(
            line=line,
            unit=unit,
            name=name,
            roles=roles,
            wecom_id=wecom_id or None,
            dingtalk_id=dingtalk_id or None,
            units_in_charge=in_charge,
            preferred_channel=(channel or Channel.WECOM).value,
        )
        candidates.append(row)
        if in_charge:
            leader_lines.append(row)

    # 分管单位 can name a unit listed further down, so it is checked once every 单位 is known.
    known = units_in_file | set(known_units)
    where = "本文件的单位列和系统中都" if known_units else "本文件的单位列中"
    for row in leader_lines:
        missing = [u for u in row.units_in_charge if u not in known]
        if missing:
            names = "、".join(f"“{u}”" for u in missing)
            problems[row.line].append(f"分管单位{names}在{where}找不到，请核对单位名称。")

    if not candidates:
        raise ImportFileError("文件中只有表头，没有人员数据。")
    errors = [RowError(line, msg) for line, msgs in problems.items() for msg in msgs]
    rows = [r for r in candidates if not problems.get(r.line)]
    return OrgImport(rows=rows, errors=sorted(errors, key=lambda e: e.line))


def _roles(text: str) -> tuple[frozenset[Role], str | None]:
    """Roles of one cell, checked word by word so that every unknown word is named in the report."""
    words = split_names(text)
    if not words:
        return frozenset(), "角色不能为空。"
    roles: set[Role] = set()
    bad: list[str] = []
    for word in words:
        try:
            roles |= parse_roles(word)
        except ValidationError:
            bad.append(word)
    if bad:
        return frozenset(roles), f"角色{'、'.join(f'“{w}”' for w in bad)}无法识别，{_ROLE_HINT}。"
    return frozenset(roles), None


# ---- task ledger --------------------------------------------------------------------------------------

_LEDGER_COLUMNS = (
    _Column("key_point", "工作要点", ("工作要点", "要点", "key_point")),
    _Column("task", "任务", ("任务", "工作任务", "任务内容", "task")),
    _Column("lead_unit", "牵头单位", ("牵头单位", "牵头部门", "lead_unit")),
    _Column("co_units", "配合单位", ("配合单位", "配合部门", "协办单位", "co_units")),
    _Column("leader", "分管校领导", ("分管校领导", "分管领导", "leader")),
    _Column("deadline", "完成时限", ("完成时限", "完成时间", "办结时限", "deadline")),
    _Column("category", "类别", ("类别", "category")),
    _Column("secrecy", "密级", ("密级", "secrecy", "classification")),
)

_DATE_SEP_RE = re.compile(r"(\d{4})\s*([-/.])\s*(\d{1,2})\s*\2\s*(\d{1,2})(?:\s*[T ]\s*\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_DATE_CN_RE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?")
_DATE_COMPACT_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def parse_task_ledger(path: pathlib.Path, today: dt.date) -> LedgerImport:
    """Read and check `duban items import FILE.xlsx` (第八条 1), also accepting CSV.

    Required columns: 工作要点, 任务, 牵头单位, 分管校领导, 完成时限; optional 配合单位, 类别, 密级. A deadline
    before `today` is refused, as `Item.create` would refuse it. A confidential row (类别 mentioning 涉密,
    机密, 秘密 or 绝密, or a 密级 other than 非密/公开) gets only the confidential message, so nothing of
    it is echoed back.
    """
    table = _read_table(pathlib.Path(path), fill_merged=True)
    header_at, cols = _locate_header(
        table, _LEDGER_COLUMNS, required=("key_point", "task", "lead_unit", "leader", "deadline"), one_of=()
    )

    errors: list[RowError] = []
    rows: list[TaskRow] = []
    seen_tasks: dict[tuple[str, str], int] = {}
    seen_any = False

    for line, cells in table[header_at + 1 :]:
        get = _getter(cells, cols)
        if not any(get(k) for k in cols):
            continue
        seen_any = True
        if _is_confidential(get("category"), get("secrecy")):
            errors.append(RowError(line, CONFIDENTIAL_MESSAGE))
            continue

        errs: list[str] = []
        key_point, task = get("key_point"), get("task")
        lead, leader, category = get("lead_unit"), get("leader"), get("category")

        if not task:
            errs.append("任务不能为空。")
        elif len(task) > TITLE_MAX:
            errs.append(f"任务过长（不超过 {TITLE_MAX} 字），可把说明写在工作要点中。")
        if len(key_point) > TEXT_MAX:
            errs.append(f"工作要点过长（不超过 {TEXT_MAX} 字）。")

        co_units = split_names(get("co_units"))
        if not lead:
            errs.append("牵头单位不能为空。")
        elif len(split_names(lead)) > 1:
            errs.append("牵头单位只能填写一个，其余单位请填在配合单位中。")
        elif len(lead) > UNIT_MAX:
            errs.append(f"牵头单位名称过长（不超过 {UNIT_MAX} 字）。")
        elif lead in co_units:
            errs.append(f"牵头单位“{lead}”不能同时列为配合单位。")
        if any(len(u) > UNIT_MAX for u in co_units):
            errs.append(f"配合单位名称过长（每个不超过 {UNIT_MAX} 字）。")

        if not leader:
            errs.append("分管校领导不能为空。")
        elif len(split_names(leader)) > 1:
            errs.append("分管校领导只能填写一位。")
        elif len(leader) > NAME_MAX:
            errs.append(f"分管校领导姓名过长（不超过 {NAME_MAX} 字）。")

        if len(category) > CATEGORY_MAX:
            errs.append(f"类别过长（不超过 {CATEGORY_MAX} 字）。")

        deadline, deadline_error = _deadline(_raw(cells, cols, "deadline"), today)
        if deadline_error:
            errs.append(deadline_error)

        if task and lead:
            if (task, lead) in seen_tasks:
                errs.append(f"与第 {seen_tasks[(task, lead)]} 行重复：任务和牵头单位都相同。")
            else:
                seen_tasks[(task, lead)] = line

        if errs:
            errors.extend(RowError(line, m) for m in errs)
        else:
            assert deadline is not None
            rows.append(
                TaskRow(
                    line=line,
                    key_point=key_point,
                    task=task,
                    lead_unit=lead,
                    co_units=co_units,
                    leader=leader,
                    deadline=deadline,
                    category=category,
                )
            )

    if not seen_any:
        raise ImportFileError("文件中只有表头，没有任务数据。")
    return LedgerImport(rows=rows, errors=errors)


def _is_confidential(category: str, secrecy: str) -> bool:
    if any(w in category for w in _CONFIDENTIAL_WORDS):
        return True
    return bool(secrecy) and secrecy not in _NOT_CONFIDENTIAL_LEVELS


def _deadline(raw: object, today: dt.date) -> tuple[dt.date | None, str | None]:
    """完成时限 from a date cell or the ways people type dates; the message says what to write instead."""
    if isinstance(raw, dt.datetime):
        day: dt.date | None = raw.date()
        shown = day.isoformat()
    elif isinstance(raw, dt.date):
        day = raw
        shown = day.isoformat()
    else:
        shown = _cell_text(raw)
        if not shown:
            return None, "完成时限不能为空。"
        try:
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and not _DATE_COMPACT_RE.fullmatch(shown):
                day = _excel_serial(raw)  # a date cell formatted as a number
            else:
                day = _date_from_text(shown)
        except _ImpossibleDate:
            return None, f"完成时限“{shown}”不是有效的日期，请核对月份和日。"
        if day is None:
            return None, f"完成时限“{shown}”无法识别，请写成 2026-12-31 这样的日期。"
    if day < today:
        return None, f"完成时限 {day.isoformat()} 早于今天（{today.isoformat()}），请核对。"
    return day, None


class _ImpossibleDate(ValueError):
    """The text has the shape of a date, but the calendar has no such day (2026-02-30)."""


def _date_from_text(text: str) -> dt.date | None:
    """None when the text is not shaped like a date at all."""
    text = unicodedata.normalize("NFKC", text).strip()  # full-width digits and ／ from Chinese IMEs
    for pattern, groups in ((_DATE_SEP_RE, (1, 3, 4)), (_DATE_CN_RE, (1, 2, 3)), (_DATE_COMPACT_RE, (1, 2, 3))):
        m = pattern.fullmatch(text)
        if m:
            y, mo, d = (int(m.group(g)) for g in groups)
            try:
                return dt.date(y, mo, d)
            except ValueError as exc:
                raise _ImpossibleDate(text) from exc
    return None


def _excel_serial(value: float) -> dt.date | None:
    from openpyxl.utils.datetime import from_excel

    if not 1 <= value < 2958466:  # 1900-01-01 .. 9999-12-31
        return None
    try:
        result = from_excel(value)
    except (ValueError, OverflowError):
        return None
    return result.date() if isinstance(result, dt.datetime) else None


# ---- reading tables ---------------------------------------------------------------------------------------

Table = list[tuple[int, tuple[object, ...]]]  # (line as Excel shows it, raw cell values)


def _read_table(path: pathlib.Path, *, fill_merged: bool) -> Table:
    """Every row of the file (blank ones too, so line numbers match Excel), or an ImportFileError."""
    suffix = path.suffix.lower()
    if suffix == ".xls" or suffix == ".et":
        raise ImportFileError("不支持旧版 Excel（.xls）文件，请在 Excel 或 WPS 中另存为 .xlsx 或 .csv 后再导入。")
    if suffix not in _CSV_SUFFIXES | _XLSX_SUFFIXES:
        raise ImportFileError(f"无法识别文件类型“{path.suffix or path.name}”，请使用 .xlsx 或 .csv 文件。")
    if not path.exists():
        raise ImportFileError(f"找不到文件：{path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"无法读取文件 {path.name}：{exc.strerror or exc}。") from exc
    if not data.strip():
        raise ImportFileError(f"文件 {path.name} 是空的。")
    if suffix in _XLSX_SUFFIXES or data[:4] == b"PK\x03\x04":  # an .xlsx saved under a .csv name is still read
        table = _read_xlsx(data, path.name, fill_merged=fill_merged)
    else:
        table = _read_csv(data, path.name)
    if not any(_row_has_text(cells) for _, cells in table):
        raise ImportFileError(f"文件 {path.name} 是空的。")
    return table


def _read_csv(data: bytes, name: str) -> Table:
    text = _decode(data, name)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = "\t" if "\t" in first and "," not in first else ","
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ImportFileError(f"文件 {name} 不是有效的 CSV：{exc}。") from exc
    return [(i, tuple(rec)) for i, rec in enumerate(records, start=1)]


def _decode(data: bytes, name: str) -> str:
    """UTF-8 first (with or without BOM), then GB18030, which covers the GBK that Excel writes in China."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportFileError(f"无法识别文件 {name} 的编码，请另存为“CSV UTF-8”格式后再导入。")


def _read_xlsx(data: bytes, name: str, *, fill_merged: bool) -> Table:
    """First sheet, values not formulas. Streaming (read-only) mode unless merged cells must be filled."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=not fill_merged, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError, XML and its own errors for a bad file
        raise ImportFileError(f"无法读取 Excel 文件 {name}：文件可能已损坏，或不是 .xlsx 格式。") from exc
    try:
        if not wb.worksheets:
            raise ImportFileError(f"Excel 文件 {name} 中没有工作表。")
        ws = wb.worksheets[0]
        if fill_merged:
            rows = [list(r) for r in ws.iter_rows(min_row=1, values_only=True)]
            for rng in ws.merged_cells.ranges:
                top = ws.cell(rng.min_row, rng.min_col).value
                for r in range(rng.min_row + 1, min(rng.max_row, len(rows)) + 1):
                    row = rows[r - 1]
                    if len(row) < rng.min_col:
                        row.extend([None] * (rng.min_col - len(row)))
                    row[rng.min_col - 1] = top
        else:
            ws.reset_dimensions()  # some writers record a wrong used range; read what is really there
            rows = [list(r) for r in ws.iter_rows(min_row=1, values_only=True)]
    except ImportFileError:
        raise
    except Exception as exc:
        raise ImportFileError(f"无法读取 Excel 文件 {name}：文件可能已损坏。") from exc
    finally:
        wb.close()
    return [(i, tuple(r)) for i, r in enumerate(rows, start=1)]


def _locate_header(
    table: Table, columns: Sequence[_Column], *, required: Sequence[str], one_of: Sequence[str]
) -> tuple[int, dict[str, int]]:
    """Index in `table` of the header row and the column position of each recognised key."""
    by_alias = {_header_key(a): c.key for c in columns for a in c.aliases}
    labels = {c.key: c.label for c in columns}
    best: tuple[int, dict[str, int]] | None = None
    checked = 0
    for index, (line, cells) in enumerate(table):
        if not _row_has_text(cells):
            continue
        cols: dict[str, int] = {}
        for pos, cell in enumerate(cells):
            key = by_alias.get(_header_key(_cell_text(cell)))
            if key is None:
                continue
            if key in cols:
                raise ImportFileError(f"第 {line} 行表头中“{labels[key]}”列出现了两次，请只保留一列。")
            cols[key] = pos
        if all(k in cols for k in required) and (not one_of or any(k in cols for k in one_of)):
            return index, cols
        if best is None or len(cols) > len(best[1]):
            best = (index, cols)
        checked += 1
        if checked >= HEADER_SEARCH_ROWS:
            break
    found = best[1] if best else {}
    missing = [f"“{labels[k]}”列" for k in required if k not in found]
    if one_of and not any(k in found for k in one_of):
        missing.append("或".join(f"“{labels[k]}”" for k in one_of) + "列（至少一列）")
    expected = "、".join(labels[k] for k in (*required, *one_of))
    raise ImportFileError(f"表头缺少{'、'.join(missing)}。请确认第一行为列名，例如：{expected}。")


def _header_key(text: str) -> str:
    text = _HEADER_NOTE_RE.sub("", unicodedata.normalize("NFKC", text))
    return _HEADER_NOISE_RE.sub("", text).lower()


def _getter(cells: tuple[object, ...], cols: dict[str, int]) -> Callable[[str], str]:
    def get(key: str) -> str:
        return _cell_text(_raw(cells, cols, key))

    return get


def _raw(cells: tuple[object, ...], cols: dict[str, int], key: str) -> object:
    pos = cols.get(key)
    return cells[pos] if pos is not None and pos < len(cells) else None


def _row_has_text(cells: Sequence[object]) -> bool:
    return any(_cell_text(c) for c in cells)


def _cell_text(value: object) -> str:
    """A cell as text: trimmed (full-width spaces too), numbers without a stray `.0`, dates as ISO."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return _clean(str(value))


def _clean(text: str) -> str:
    return _EDGE_SPACE_RE.sub("", text)
