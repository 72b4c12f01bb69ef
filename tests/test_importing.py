"""`duban org import` and `duban items import`: what the office sees when it imports a sheet.

Every test writes a real CSV or XLSX file the way Excel/WPS would and parses it back.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import pathlib
import sys

import openpyxl
import pytest

# Until the package is installed or a conftest puts the project root on sys.path (pytest's default
# import mode adds only tests/), make `bot` and `domain` importable from here. Harmless once they are.
_ROOT = str(pathlib.Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from bot.importing import (  # noqa: E402
    ImportFileError,
    LedgerImport,
    OrgImport,
    RowError,
    parse_org_file,
    parse_task_ledger,
    split_names,
)
from domain.errors import CONFIDENTIAL_MESSAGE, ValidationError  # noqa: E402
from domain.roles import Role  # noqa: E402

TODAY = dt.date(2026, 3, 2)

ORG_HEADER = ["单位", "姓名", "角色", "企业微信ID", "钉钉ID", "分管单位"]
LEDGER_HEADER = ["工作要点", "任务", "牵头单位", "配合单位", "分管校领导", "完成时限", "类别"]


# ---- helpers -------------------------------------------------------------------------------------------


def write_csv(
    tmp_path: pathlib.Path, rows: list[list[object]], *, encoding: str = "utf-8-sig", name: str = "org.csv"
) -> pathlib.Path:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    path = tmp_path / name
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def write_xlsx(tmp_path: pathlib.Path, rows: list[list[object]], *, name: str = "org.xlsx") -> pathlib.Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "名单"
    for row in rows:
        ws.append(row)
    other = wb.create_sheet("说明")
    other.append(["这张表不应被读取"])
    path = tmp_path / name
    wb.save(path)
    return path


def org(tmp_path: pathlib.Path, *data: list[object], header: list[str] = ORG_HEADER, **kw: object) -> OrgImport:
    return parse_org_file(write_csv(tmp_path, [header, *data]), **kw)  # type: ignore[arg-type]


def ledger(tmp_path: pathlib.Path, *data: list[object], header: list[str] = LEDGER_HEADER) -> LedgerImport:
    return parse_task_ledger(write_xlsx(tmp_path, [header, *data], name="台账.xlsx"), TODAY)


def only_error(result: OrgImport | LedgerImport) -> RowError:
    assert not result.ok
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def errors_at(result: OrgImport | LedgerImport, line: int) -> str:
    return "\n".join(e.message for e in result.errors if e.line == line)


GOOD_ORG = [
    ["学校办公室", "王督办", "学校办公室", "wangdb", ""],
    ["教务处", "李处长", "主要负责人", "lichu", "dd_li"],
    ["教务处", "张专人", "办理人", "", "dd-zhang"],
]


# ---- split_names ----------------------------------------------------------------------------------------


def test_names_in_one_cell_may_be_separated_by_dunhao_or_either_comma() -> None:
    assert split_names("教务处、科研处,人事处，财务处") == ("教务处", "科研处", "人事处", "财务处")


def test_names_in_one_cell_are_trimmed_deduplicated_and_blanks_dropped() -> None:
    assert split_names(" 教务处 、\u3000科研处\u3000,,教务处，") == ("教务处", "科研处")
    assert split_names("") == ()
    assert split_names("  ") == ()


# ---- org sheet: files that work ------------------------------------------------------------------------------


def test_org_csv_with_bom_gives_every_person_with_roles_and_ids(tmp_path: pathlib.Path) -> None:
    path = write_csv(tmp_path, [ORG_HEADER, *GOOD_ORG], encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    result = parse_org_file(path)

    assert result.ok, result.report()
    assert [(r.line, r.unit, r.name) for r in result.rows] == [
        (2, "学校办公室", "王督办"),
        (3, "教务处", "李处长"),
        (4, "教务处", "张专人"),
    ]
    office, principal, handler = result.rows
    assert office.roles == frozenset({Role.OFFICE})
    assert office.wecom_id == "wangdb" and office.dingtalk_id is None
    assert principal.roles == frozenset({Role.PRINCIPAL})
    assert principal.dingtalk_id == "dd_li"
    assert handler.wecom_id is None and handler.dingtalk_id == "dd-zhang"
    assert all(r.preferred_channel == "wecom" for r in result.rows)
    assert all(r.units_in_charge == () for r in result.rows)
    assert result.units == {"学校办公室", "教务处"}
    assert "检查通过" in result.report() and "3 人" in result.report()


def test_org_csv_without_bom_is_read(tmp_path: pathlib.Path) -> None:
    path = write_csv(tmp_path, [ORG_HEADER, *GOOD_ORG], encoding="utf-8")
    assert parse_org_file(path).ok


def test_org_csv_saved_by_excel_on_chinese_windows_in_gb18030_is_read(tmp_path: pathlib.Path) -> None:
    path = write_csv(tmp_path, [ORG_HEADER, *GOOD_ORG], encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")

    result = parse_org_file(path)

    assert result.ok, result.report()
    assert [r.name for r in result.rows] == ["王督办", "李处长", "张专人"]


def test_org_xlsx_reads_the_first_sheet_and_numeric_ids(tmp_path: pathlib.Path) -> None:
    rows = [ORG_HEADER, ["教务处", "李处长", "主要负责人", 10086, None, None], ["教务处", "张专人", "办理人", "zhang", None]]
    result = parse_org_file(write_xlsx(tmp_path, rows))

    assert result.ok, result.report()
    assert [(r.line, r.name, r.wecom_id) for r in result.rows] == [(2, "李处长", "10086"), (3, "张专人", "zhang")]


def test_org_english_headers_and_english_role_words_are_accepted(tmp_path: pathlib.Path) -> None:
    header = ["unit", "name", "roles", "wecom_id", "dingtalk_id", "units_in_charge", "preferred_channel"]
    result = org(
        tmp_path,
        ["President Office", "Zhao", "Leader, office", "zhao", "", "Academic Affairs", "wecom"],
        ["Academic Affairs", "Qian", "principal", "qian", "dd_qian", "", "dingtalk"],
        header=header,
    )

    assert result.ok, result.report()
    zhao, qian = result.rows
    assert zhao.roles == frozenset({Role.LEADER, Role.OFFICE})
    assert zhao.units_in_charge == ("Academic Affairs",)
    assert qian.preferred_channel == "dingtalk"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("校领导、主要负责人", {Role.LEADER, Role.PRINCIPAL}),
        ("学校办公室,办理人", {Role.OFFICE, Role.HANDLER}),
        ("主要负责人，办理人", {Role.PRINCIPAL, Role.HANDLER}),
        ("office、handler", {Role.OFFICE, Role.HANDLER}),
        ("Principal，办理人", {Role.PRINCIPAL, Role.HANDLER}),
        ("专人", {Role.HANDLER}),
    ],
)
def test_several_roles_in_either_language_and_any_separator(
    tmp_path: pathlib.Path, cell: str, expected: set[Role]
) -> None:
    result = org(tmp_path, ["教务处", "李四", cell, "lisi", ""])
    assert result.ok, result.report()
    assert result.rows[0].roles == frozenset(expected)


def test_full_width_spaces_are_trimmed_and_blank_rows_skipped_keeping_excel_line_numbers(
    tmp_path: pathlib.Path,
) -> None:
    result = org(
        tmp_path,
        ["\u3000教务处 ", " 李处长\u3000", "\u3000主要负责人", " lichu ", ""],
        ["", "", "", "", ""],
        ["\u3000", " ", "", "", ""],
        ["科研处", "周处长", "主要负责人", "zhou", ""],
    )

    assert result.ok, result.report()
    assert [(r.line, r.unit, r.name, r.wecom_id) for r in result.rows] == [
        (2, "教务处", "李处长", "lichu"),
        (5, "科研处", "周处长", "zhou"),
    ]


def test_a_header_with_notes_and_extra_columns_in_any_order_is_understood(tmp_path: pathlib.Path) -> None:
    header = ["序号", "姓名*", "钉钉ID", "单位（全称）", "角色", "备注"]
    result = org(tmp_path, ["1", "张三", "dd_zhang", "教务处", "办理人", "新入职"], ["2", "", "", "", "", ""], header=header)

    assert result.ok, result.report()
    assert [(r.unit, r.name, r.dingtalk_id) for r in result.rows] == [("教务处", "张三", "dd_zhang")]


def test_a_title_row_above_the_header_is_tolerated(tmp_path: pathlib.Path) -> None:
    path = write_xlsx(tmp_path, [["2026 年督办人员名单"], ORG_HEADER, ["教务处", "张三", "办理人", "zhang", ""]])
    result = parse_org_file(path)
    assert result.ok, result.report()
    assert result.rows[0].line == 3


@pytest.mark.parametrize(("word", "channel"), [("企业微信", "wecom"), ("钉钉", "dingtalk"), ("DingTalk", "dingtalk")])
def test_preferred_channel_is_read_in_either_language(tmp_path: pathlib.Path, word: str, channel: str) -> None:
    header = [*ORG_HEADER, "首选渠道"]
    result = org(tmp_path, ["教务处", "张三", "办理人", "zhang", "dd_zhang", "", word], header=header)
    assert result.ok, result.report()
    assert result.rows[0].preferred_channel == channel


def test_a_leader_may_be_in_charge_of_units_listed_further_down(tmp_path: pathlib.Path) -> None:
    result = org(
        tmp_path,
        ["校领导", "赵校长", "校领导", "zhao", "", "教务处、科研处"],
        ["教务处", "李处长", "主要负责人", "li", ""],
        ["科研处", "周处长", "主要负责人", "zhou", ""],
    )

    assert result.ok, result.report()
    assert result.rows[0].units_in_charge == ("教务处", "科研处")
    assert result.referenced_units == {"教务处", "科研处"}


def test_a_leader_may_be_in_charge_of_a_unit_already_in_the_system(tmp_path: pathlib.Path) -> None:
    row = ["校领导", "赵校长", "校领导", "zhao", "", "财务处"]
    assert org(tmp_path, row, known_units={"财务处"}).ok


# ---- org sheet: row errors ---------------------------------------------------------------------------------------


def test_an_unknown_role_word_is_reported_with_its_line(tmp_path: pathlib.Path) -> None:
    result = org(tmp_path, GOOD_ORG[0], ["教务处", "李四", "主任", "lisi", ""])

    err = only_error(result)
    assert err.line == 3
    assert "角色“主任”无法识别" in err.message
    assert "第 3 行：角色“主任”无法识别" in result.report()
    assert [r.line for r in result.rows] == [2]


def test_every_unknown_role_word_of_a_cell_is_named(tmp_path: pathlib.Path) -> None:
    err = only_error(org(tmp_path, ["教务处", "李四", "主任、办理人、科员", "lisi", ""]))
    assert "“主任”" in err.message and "“科员”" in err.message and "办理人”" not in err.message


def test_an_empty_role_is_reported(tmp_path: pathlib.Path) -> None:
    err = only_error(org(tmp_path, ["教务处", "李四", "", "lisi", ""]))
    assert (err.line, err.message) == (2, "角色不能为空。")


def test_a_row_without_unit_is_reported(tmp_path: pathlib.Path) -> None:
    err = only_error(org(tmp_path, GOOD_ORG[0], ["", "李四", "办理人", "lisi", ""]))
    assert err.line == 3 and "单位不能为空" in err.message


def test_a_row_without_name_is_reported(tmp_path: pathlib.Path) -> None:
    err = only_error(org(tmp_path, ["教务处", "\u3000", "办理人", "lisi", ""]))
    assert err.line == 2 and "姓名不能为空" in err.message


def test_a_name_longer_than_fifty_characters_is_reported(tmp_path: pathlib.Path) -> None:
    assert org(tmp_path, ["教务处", "名" * 50, "办理人", "lisi", ""]).ok
    err = only_error(org(tmp_path, ["教务处", "名" * 51, "办理人", "lisi", ""]))
    assert err.line == 2 and "姓名过长" in err.message and "50" in err.message


def test_a_person_with_neither_wecom_nor_dingtalk_id_is_reported(tmp_path: pathlib.Path) -> None:
    err = only_error(org(tmp_path, GOOD_ORG[0], ["教务处", "李四", "办理人", " ", ""]))
    assert err.line == 3 and "企业微信ID和钉钉ID至少要填写一个" in err.message


def test_a_duplicate_wecom_id_is_reported_on_the_later_row_whatever_its_case(tmp_path: pathlib.Path) -> None:
    result = org(tmp_path, ["教务处", "李四", "办理人", "LiSi", ""], ["科研处", "李思", "办理人", "lisi", ""])
    err = only_error(result)
    assert err.line == 3 and "企业微信ID“lisi”与第 2 行重复" in err.message


def test_a_duplicate_dingtalk_id_is_reported(tmp_path: pathlib.Path) -> None:
    result = org(tmp_path, ["教务处", "李四", "办理人", "", "dd1"], ["科研处", "王五", "办理人", "", "dd1"])
    err = only_error(result)
    assert err.line == 3 and "钉钉ID“dd1”与第 2 行重复" in err.message


def test_the_same_person_twice_in_one_unit_is_reported(tmp_path: pathlib.Path) -> None:
    result = org(tmp_path, ["教务处", "李四", "办理人", "lisi", ""], ["教务处", "李四", "主要负责人", "lisi2", ""])
    err = only_error(result)
    assert err.line == 3 and "与第 2 行重复" in err.message and "李四" in err.message


def test_the_same_name_in_two_units_is_two_people(tmp_path: pathlib.Path) -> None:
    assert org(tmp_path, ["教务处", "李四", "办理人", "lisi", ""], ["科研处", "李四", "办理人", "lisi2", ""]).ok


@pytest.mark.parametrize("bad", ["li si", "李四", "lisi#1", "x" * 65])
def test_a_malformed_wecom_id_is_reported(tmp_path: pathlib.Path, bad: str) -> None:
    err = only_error(org(tmp_path, ["教务处", "李四", "办理人", bad, ""]))
    assert err.line == 2 and "企业微信ID" in err.message and "格式不正确" in err.message


def test_wecom_ids_may_hold_dots_at_signs_and_hyphens(tmp_path: pathlib.Path) -> None:
    result = org(tmp_path, ["教务处", "李四", "办理人", "li.si@edu-cn_1", ""])
    assert result.ok, result.report()


@pytest.mark.parametrize("bad", ["li.si", "li@si", "钉钉1", "d" * 65])
def test_a_malformed_dingtalk_id_is_reported(tmp_path: pathlib.Path, bad: str) -> None:
    err = only_error(org(tmp_path, ["教务处", "李四", "办理人", "", bad]))
    assert err.line == 2 and "钉钉ID" in err.message and "格式不正确" in err.message


def test_units_in_charge_for_someone_who_is_not_a_leader_is_reported(tmp_path: pathlib.Path) -> None:
    result = org(tmp_path, ["教务处", "李处长", "主要负责人", "li", "", "教务处"])
    err = only_error(result)
    assert err.line == 2 and "只有校领导才能填写分管单位" in err.message


def test_a_leader_in_charge_of_a_unit_nowhere_in_the_file_is_reported(tmp_path: pathlib.Path) -> None:
    result = org(
        tmp_path,
        ["教务处", "李处长", "主要负责人", "li", ""],
        ["校领导", "赵校长", "校领导", "zhao", "", "教务处、教物处"],
    )
    err = only_error(result)
    assert err.line == 3 and "分管单位“教物处”" in err.message and "找不到" in err.message
    assert "“教务处”" not in err.message


def test_an_unknown_preferred_channel_is_reported(tmp_path: pathlib.Path) -> None:
    header = [*ORG_HEADER, "首选渠道"]
    err = only_error(org(tmp_path, ["教务处", "张三", "办理人", "zhang", "", "", "飞书"], header=header))
    assert err.line == 2 and "首选渠道“飞书”无法识别" in err.message


def test_a_preferred_channel_without_its_id_is_reported(tmp_path: pathlib.Path) -> None:
    header = [*ORG_HEADER, "首选渠道"]
    err = only_error(org(tmp_path, ["教务处", "张三", "办理人", "zhang", "", "", "钉钉"], header=header))
    assert err.line == 2 and "没有填写钉钉ID" in err.message


def test_every_problem_of_a_row_is_reported_at_once(tmp_path: pathlib.Path) -> None:
    result = org(tmp_path, ["", "", "主任", "", ""])
    text = errors_at(result, 2)
    assert "单位不能为空" in text and "姓名不能为空" in text and "主任" in text and "至少要填写一个" in text


BAD_ORG_ROWS = [
    ["", "李四", "办理人", "lisi", ""],
    ["教务处", "", "办理人", "lisi", ""],
    ["教务处", "李四", "主任", "lisi", ""],
    ["教务处", "李四", "办理人", "", ""],
    ["教务处", "李四", "办理人", "wangdb", ""],  # wangdb is taken on line 2
    ["学校办公室", "王督办", "办理人", "other", ""],  # same person as line 2
    ["教务处", "李四", "办理人", "li si", ""],
    ["教务处", "李四", "办理人", "", "li.si"],
    ["教务处", "名" * 51, "办理人", "lisi", ""],
    ["教务处", "李四", "办理人", "lisi", "", "教务处"],
    ["教务处", "李四", "校领导", "lisi", "", "不存在的处"],
]


@pytest.mark.parametrize("bad", BAD_ORG_ROWS, ids=range(len(BAD_ORG_ROWS)))
def test_the_import_is_not_ok_whenever_any_row_is_wrong(tmp_path: pathlib.Path, bad: list[str]) -> None:
    result = org(tmp_path, GOOD_ORG[0], bad)

    assert not result.ok
    assert {e.line for e in result.errors} == {3}
    assert [r.line for r in result.rows] == [2]
    assert result.report().splitlines()[1].startswith("第 3 行：")


# ---- org sheet: files that cannot be used -------------------------------------------------------------------


def test_a_missing_required_column_is_a_file_error_naming_it(tmp_path: pathlib.Path) -> None:
    path = write_csv(tmp_path, [["单位", "姓名", "企业微信ID"], ["教务处", "李四", "lisi"]])
    with pytest.raises(ImportFileError) as info:
        parse_org_file(path)
    assert "角色" in info.value.message
    assert isinstance(info.value, ValidationError)


def test_a_sheet_without_any_id_column_is_a_file_error(tmp_path: pathlib.Path) -> None:
    path = write_csv(tmp_path, [["单位", "姓名", "角色"], ["教务处", "李四", "办理人"]])
    with pytest.raises(ImportFileError) as info:
        parse_org_file(path)
    assert "企业微信ID" in info.value.message and "钉钉ID" in info.value.message


def test_a_column_given_twice_is_a_file_error(tmp_path: pathlib.Path) -> None:
    path = write_csv(tmp_path, [[*ORG_HEADER, "姓名"], ["教务处", "李四", "办理人", "lisi", "", "", "李四"]])
    with pytest.raises(ImportFileError, match="姓名"):
        parse_org_file(path)


def test_an_unknown_file_type_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "名单.docx"
    path.write_bytes(b"whatever")
    with pytest.raises(ImportFileError) as info:
        parse_org_file(path)
    assert ".xlsx" in info.value.message and ".csv" in info.value.message


def test_an_old_xls_file_gets_a_hint_to_save_as_xlsx(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "名单.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(ImportFileError, match="另存为"):
        parse_org_file(path)


def test_a_missing_file_is_reported(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ImportFileError, match="找不到文件"):
        parse_org_file(tmp_path / "nope.csv")


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\r\n,,,\r\n"])
def test_an_empty_file_is_reported(tmp_path: pathlib.Path, content: bytes) -> None:
    path = tmp_path / "org.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match="空的"):
        parse_org_file(path)


def test_a_header_without_people_is_reported(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ImportFileError, match="没有人员数据"):
        parse_org_file(write_csv(tmp_path, [ORG_HEADER, ["", "", "", "", "", ""]]))


def test_a_broken_xlsx_is_reported_as_unreadable(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "org.xlsx"
    path.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ImportFileError, match="无法读取"):
        parse_org_file(path)


def test_undecodable_bytes_are_reported(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "org.csv"
    path.write_bytes("单位,姓名\n".encode() + b"\x81\x30\xff\xff\xff")
    with pytest.raises(ImportFileError, match="编码"):
        parse_org_file(path)


# ---- task ledger: files that work --------------------------------------------------------------------------


def test_a_ledger_with_date_cells_gives_one_task_per_row(tmp_path: pathlib.Path) -> None:
    result = ledger(
        tmp_path,
        ["提升本科教学质量", "制定课程思政实施方案", "教务处", "学生处、团委", "赵校长", dt.datetime(2026, 6, 30), "教学"],
        ["加强科研平台建设", "申报省级重点实验室", "科研处", "", "钱校长", dt.date(2026, 12, 31), ""],
    )

    assert result.ok, result.report()
    first, second = result.rows
    assert first.line == 2
    assert first.key_point == "提升本科教学质量" and first.content == "提升本科教学质量"
    assert first.task == "制定课程思政实施方案" and first.title == "制定课程思政实施方案"
    assert first.lead_unit == "教务处"
    assert first.co_units == ("学生处", "团委")
    assert first.leader == "赵校长"
    assert first.deadline == dt.date(2026, 6, 30)
    assert first.category == "教学"
    assert (second.line, second.co_units, second.deadline, second.category) == (3, (), dt.date(2026, 12, 31), "")
    assert "2 项" in result.report()


@pytest.mark.parametrize("text", ["2026-12-31", "2026/12/31", "2026年12月31日", "2026.12.31", "2026-12-31 00:00:00"])
def test_a_deadline_typed_as_text_in_any_usual_way_is_understood(tmp_path: pathlib.Path, text: str) -> None:
    result = ledger(tmp_path, ["要点", "任务一", "教务处", "", "赵校长", text, ""])
    assert result.ok, result.report()
    assert result.rows[0].deadline == dt.date(2026, 12, 31)


def test_a_deadline_with_single_digit_month_and_day_is_understood(tmp_path: pathlib.Path) -> None:
    result = ledger(tmp_path, ["要点", "任务一", "教务处", "", "赵校长", "2026/5/1", ""])
    assert result.rows[0].deadline == dt.date(2026, 5, 1)


def test_a_deadline_of_today_is_accepted(tmp_path: pathlib.Path) -> None:
    assert ledger(tmp_path, ["要点", "任务一", "教务处", "", "赵校长", TODAY.isoformat(), ""]).ok


def test_a_ledger_may_also_be_a_csv_file(tmp_path: pathlib.Path) -> None:
    path = write_csv(
        tmp_path, [LEDGER_HEADER, ["要点", "任务一", "教务处", "科研处，人事处", "赵校长", "2026年7月1日", ""]], name="台账.csv"
    )
    result = parse_task_ledger(path, TODAY)
    assert result.ok, result.report()
    assert result.rows[0].co_units == ("科研处", "人事处")
    assert result.rows[0].deadline == dt.date(2026, 7, 1)


def test_a_ledger_without_the_optional_columns_is_accepted(tmp_path: pathlib.Path) -> None:
    header = ["工作要点", "任务", "牵头单位", "分管校领导", "完成时限"]
    result = ledger(tmp_path, ["要点", "任务一", "教务处", "赵校长", "2026-09-01"], header=header)
    assert result.ok, result.report()
    assert result.rows[0].co_units == () and result.rows[0].category == ""


def test_cells_merged_down_several_rows_count_for_each_row(tmp_path: pathlib.Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(LEDGER_HEADER)
    ws.append(["提升本科教学质量", "任务一", "教务处", "", "赵校长", "2026-06-30", ""])
    ws.append([None, "任务二", "教务处", "", None, "2026-07-31", ""])
    ws.merge_cells("A2:A3")
    ws.merge_cells("E2:E3")
    path = tmp_path / "台账.xlsx"
    wb.save(path)

    result = parse_task_ledger(path, TODAY)

    assert result.ok, result.report()
    assert [(r.key_point, r.leader) for r in result.rows] == [("提升本科教学质量", "赵校长")] * 2


def test_a_secrecy_column_saying_not_secret_is_fine(tmp_path: pathlib.Path) -> None:
    header = [*LEDGER_HEADER, "密级"]
    result = ledger(
        tmp_path,
        ["要点", "任务一", "教务处", "", "赵校长", "2026-06-30", "", "非密"],
        ["要点", "任务二", "教务处", "", "赵校长", "2026-06-30", "", "公开"],
        ["要点", "任务三", "教务处", "", "赵校长", "2026-06-30", "", ""],
        header=header,
    )
    assert result.ok, result.report()


# ---- task ledger: row errors ---------------------------------------------------------------------------------


def test_an_impossible_date_is_reported(tmp_path: pathlib.Path) -> None:
    err = only_error(ledger(tmp_path, ["要点", "任务一", "教务处", "", "赵校长", "2026-02-30", ""]))
    assert err.line == 2 and "完成时限“2026-02-30”不是有效的日期" in err.message


def test_a_deadline_in_the_past_is_reported(tmp_path: pathlib.Path) -> None:
    err = only_error(ledger(tmp_path, ["要点", "任务一", "教务处", "", "赵校长", dt.datetime(2026, 3, 1), ""]))
    assert err.line == 2 and "完成时限 2026-03-01 早于今天（2026-03-02）" in err.message


@pytest.mark.parametrize("text", ["长期", "6月底", "2026-13"])
def test_a_deadline_that_is_not_a_date_is_reported_with_an_example(tmp_path: pathlib.Path, text: str) -> None:
    err = only_error(ledger(tmp_path, ["要点", "任务一", "教务处", "", "赵校长", text, ""]))
    assert err.line == 2 and f"完成时限“{text}”无法识别" in err.message and "2026-12-31" in err.message


def test_an_empty_deadline_is_reported(tmp_path: pathlib.Path) -> None:
    err = only_error(ledger(tmp_path, ["要点", "任务一", "教务处", "", "赵校长", None, ""]))
    assert err.line == 2 and "完成时限不能为空" in err.message


@pytest.mark.parametrize(
    ("row", "words"),
    [
        (["要点", "", "教务处", "", "赵校长", "2026-06-30", ""], "任务不能为空"),
        (["要点", "任务一", "", "", "赵校长", "2026-06-30", ""], "牵头单位不能为空"),
        (["要点", "任务一", "教务处", "", "\u3000", "2026-06-30", ""], "分管校领导不能为空"),
    ],
)
def test_a_row_missing_task_lead_unit_or_leader_is_reported(
    tmp_path: pathlib.Path, row: list[object], words: str
) -> None:
    result = ledger(tmp_path, ["要点", "任务零", "科研处", "", "钱校长", "2026-06-30", ""], row)
    err = only_error(result)
    assert err.line == 3 and words in err.message
    assert [r.line for r in result.rows] == [2]


def test_a_lead_unit_also_listed_as_co_unit_is_reported(tmp_path: pathlib.Path) -> None:
    err = only_error(ledger(tmp_path, ["要点", "任务一", "教务处", "科研处、教务处", "赵校长", "2026-06-30", ""]))
    assert err.line == 2 and "牵头单位“教务处”不能同时列为配合单位" in err.message


def test_the_same_task_for_the_same_lead_unit_twice_is_reported(tmp_path: pathlib.Path) -> None:
    result = ledger(
        tmp_path,
        ["要点", "任务一", "教务处", "", "赵校长", "2026-06-30", ""],
        ["要点", "任务一", "科研处", "", "赵校长", "2026-06-30", ""],
        ["要点", "任务一", "教务处", "", "赵校长", "2026-07-30", ""],
    )
    err = only_error(result)
    assert err.line == 4 and "与第 2 行重复" in err.message
    assert [r.line for r in result.rows] == [2, 3]


def test_several_lead_units_or_leaders_in_one_cell_are_reported(tmp_path: pathlib.Path) -> None:
    result = ledger(tmp_path, ["要点", "任务一", "教务处、科研处", "", "赵校长，钱校长", "2026-06-30", ""])
    text = errors_at(result, 2)
    assert "牵头单位只能填写一个" in text and "分管校领导只能填写一位" in text


@pytest.mark.parametrize("category", ["涉密", "机密事项", "秘密", "绝密"])
def test_a_confidential_category_is_sent_to_the_offline_ledger(tmp_path: pathlib.Path, category: str) -> None:
    result = ledger(tmp_path, ["要点", "某保密任务", "保卫处", "", "赵校长", "2026-06-30", category])
    err = only_error(result)
    assert err.line == 2 and err.message == CONFIDENTIAL_MESSAGE
    assert "线下督办管理台账" in result.report()
    assert "某保密任务" not in result.preview()


@pytest.mark.parametrize("level", ["秘密", "机密", "内部"])
def test_a_secrecy_level_other_than_not_secret_is_sent_to_the_offline_ledger(
    tmp_path: pathlib.Path, level: str
) -> None:
    header = [*LEDGER_HEADER, "密级"]
    err = only_error(ledger(tmp_path, ["要点", "任务一", "保卫处", "", "赵校长", "2026-06-30", "", level], header=header))
    assert err.line == 2 and err.message == CONFIDENTIAL_MESSAGE


def test_a_confidential_row_is_not_echoed_even_when_it_has_other_problems(tmp_path: pathlib.Path) -> None:
    result = ledger(tmp_path, ["要点", "某保密任务", "", "", "", "2020-01-01", "涉密"])
    assert only_error(result).message == CONFIDENTIAL_MESSAGE


BAD_LEDGER_ROWS = [
    ["要点", "", "教务处", "", "赵校长", "2026-06-30", ""],
    ["要点", "任务二", "", "", "赵校长", "2026-06-30", ""],
    ["要点", "任务二", "教务处", "", "", "2026-06-30", ""],
    ["要点", "任务二", "教务处", "教务处", "赵校长", "2026-06-30", ""],
    ["要点", "任务一", "教务处", "", "赵校长", "2026-06-30", ""],  # same as line 2
    ["要点", "任务二", "教务处", "", "赵校长", "2026-02-30", ""],
    ["要点", "任务二", "教务处", "", "赵校长", "2025-12-31", ""],
    ["要点", "任务二", "教务处", "", "赵校长", "2026-06-30", "涉密"],
]


@pytest.mark.parametrize("bad", BAD_LEDGER_ROWS, ids=range(len(BAD_LEDGER_ROWS)))
def test_the_ledger_is_not_ok_whenever_any_row_is_wrong(tmp_path: pathlib.Path, bad: list[object]) -> None:
    result = ledger(tmp_path, ["要点", "任务一", "教务处", "", "赵校长", "2026-06-30", ""], bad)
    assert not result.ok
    assert {e.line for e in result.errors} == {3}
    assert [r.line for r in result.rows] == [2]


# ---- task ledger: files that cannot be used, and the preview ---------------------------------------------------


def test_a_ledger_missing_the_deadline_column_is_a_file_error(tmp_path: pathlib.Path) -> None:
    header = ["工作要点", "任务", "牵头单位", "分管校领导"]
    with pytest.raises(ImportFileError, match="完成时限"):
        ledger(tmp_path, ["要点", "任务一", "教务处", "赵校长"], header=header)


def test_a_ledger_with_only_a_header_is_a_file_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ImportFileError, match="没有任务数据"):
        ledger(tmp_path)


def test_a_ledger_of_unknown_type_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "台账.pdf"
    path.write_bytes(b"%PDF")
    with pytest.raises(ImportFileError, match="文件类型"):
        parse_task_ledger(path, TODAY)


def test_the_preview_lists_each_task_briefly_and_the_problems_last(tmp_path: pathlib.Path) -> None:
    long_task = "制定并落实" + "全面提升人才培养质量" * 5
    result = ledger(
        tmp_path,
        ["要点", long_task, "教务处", "", "赵校长", "2026-06-30", ""],
        ["要点", "任务二", "科研处", "", "钱校长", "2026/7/1", ""],
        ["要点", "任务三", "人事处", "", "孙校长", "2026-02-30", ""],
    )

    lines = result.preview().splitlines()
    task_line = next(ln for ln in lines if ln.startswith("2 |"))
    shown_task = task_line.split(" | ")[1]
    assert len(shown_task) == 30 and shown_task.endswith("…") and long_task.startswith(shown_task[:-1])
    assert "教务处" in task_line and "2026-06-30" in task_line
    assert any(ln.startswith("3 |") and "科研处" in ln and "2026-07-01" in ln for ln in lines)
    assert not any(ln.startswith("4 |") for ln in lines)
    assert lines[-1].startswith("第 4 行：") and "不是有效的日期" in lines[-1]


def test_the_preview_of_a_clean_ledger_says_how_to_commit(tmp_path: pathlib.Path) -> None:
    preview = ledger(tmp_path, ["要点", "任务一", "教务处", "", "赵校长", "2026-06-30", ""]).preview()
    assert "可导入 1 项" in preview and "--commit" in preview
