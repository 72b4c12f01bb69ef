"""The OpenAPI document served at /api/v1/openapi.json, kept beside the routes it describes."""

from __future__ import annotations

from typing import Any

_ERR = {"$ref": "#/components/schemas/Error"}


def _resp(desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"description": desc}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


_ERRORS = {
    "400": _resp("输入有误", _ERR),
    "401": _resp("令牌缺失或错误", _ERR),
    "403": _resp("无权操作", _ERR),
    "404": _resp("不存在", _ERR),
    "409": _resp("状态冲突或并发修改", _ERR),
    "413": _resp("请求过大", _ERR),
    "422": _resp("涉密事项，拒绝受理", _ERR),
}

_CODE = {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}, "description": "2026-0037 或 37"}


def _op(summary: str, ok: str, request: dict[str, Any] | None = None, params: list[Any] | None = None,
        status: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {status: _resp(ok, {"type": "object"}), **_ERRORS}}
    if request is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
    if params:
        op["parameters"] = params
    return op


NEW_ITEM = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", "title", "lead_unit", "deadline"],
    "properties": {
        "kind": {"type": "string", "enum": ["incoming", "special", "periodic"]},
        "title": {"type": "string", "maxLength": 200},
        "content": {"type": "string"},
        "source_title": {"type": "string", "description": "来文名称（来文督办必填）"},
        "source_number": {"type": "string", "description": "文号"},
        "lead_unit": {"type": "string", "description": "牵头单位名称"},
        "co_units": {"type": "array", "items": {"type": "string"}},
        "deadline": {"type": "string", "format": "date"},
        "leader": {"type": "string", "description": "分管校领导姓名"},
        "handler": {"type": "string", "description": "牵头单位办理人姓名（可选）"},
        "confidential": {"type": "boolean", "description": "涉密事项一律拒绝受理"},
        "category": {"type": "string"},
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "duban 督办 API", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/items": {
            "post": _op("交办督办事项", "已创建", NEW_ITEM, status="201"),
            "get": _op(
                "督办事项列表",
                "列表",
                params=[
                    {"name": n, "in": "query", "required": False, "schema": {"type": t}}
                    for n, t in (("status", "string"), ("kind", "string"), ("unit", "string"),
                                 ("limit", "integer"), ("offset", "integer"))
                ],
            ),
        },
        "/api/v1/items/{code}": {"get": _op("事项详情与时间线", "详情", params=[_CODE])},
        "/api/v1/items/{code}/urge": {
            "post": _op("催办", "已催办", {"type": "object", "properties": {"note": {"type": "string"}}}, [_CODE])
        },
        "/api/v1/items/{code}/cancel": {
            "post": _op("撤销", "已撤销", {"type": "object", "required": ["reason"],
                                        "properties": {"reason": {"type": "string"}}}, [_CODE])
        },
        "/api/v1/notices": {
            "post": _op("通报", "已发送", {"type": "object", "required": ["text"], "properties": {
                "text": {"type": "string"}, "units": {"type": "array", "items": {"type": "string"}}}}, status="201")
        },
        "/api/v1/stats": {"get": _op("分单位统计", "统计")},
        "/api/v1/org": {
            "post": _op("导入组织机构（全部成功或全部不导入）", "已导入", {"type": "object", "required": ["people"], "properties": {
                "people": {"type": "array", "items": {"type": "object", "required": ["unit", "name", "roles"], "properties": {
                    "unit": {"type": "string"}, "name": {"type": "string"},
                    "roles": {"type": "array", "items": {"type": "string"}},
                    "wecom_id": {"type": "string"}, "dingtalk_id": {"type": "string"},
                    "units_in_charge": {"type": "array", "items": {"type": "string"}},
                    "preferred_channel": {"type": "string", "enum": ["wecom", "dingtalk"]}}}}}})
        },
        "/api/v1/ledger": {
            "post": _op("登记来文落实情况办理台账", "已登记", {"type": "object", "required": [
                "unit", "doc_title", "doc_number", "responsible", "deadline", "summary"], "properties": {
                "unit": {"type": "string"}, "doc_title": {"type": "string"}, "doc_number": {"type": "string"},
                "responsible": {"type": "string"}, "deadline": {"type": "string", "format": "date"},
                "summary": {"type": "string"}, "confidential": {"type": "boolean"}}}, status="201"),
            "get": _op("单位台账", "台账", params=[{"name": "unit", "in": "query", "required": True,
                                                  "schema": {"type": "string"}}]),
        },
        "/api/v1/outbox": {
            "get": _op("发件箱（默认列出发送失败的消息）", "列表", params=[
                {"name": "status", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["pending", "leased", "sent", "dead"]}}])
        },
        "/api/v1/outbox/requeue": {
            "post": _op("重新发送失败的消息", "已重新排队", {"type": "object", "required": ["ids"], "properties": {
                "ids": {"type": "array", "items": {"type": "integer"}}}})
        },
        "/api/v1/openapi.json": {"get": {"summary": "本文档", "security": [], "responses": {"200": _resp("OpenAPI")}}},
        "/healthz": {"get": {"summary": "健康检查（无需令牌）", "security": [], "responses": {"200": _resp("服务正常", {"type": "object"})}}},
    },
}
