"""The OpenAPI 3 document, generated from the URL patterns, the views' operations and the schemas."""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver
from pydantic.json_schema import models_json_schema

from ... import conf, validation
from ...wire import ErrorResponse

REF = "#/components/schemas/{model}"
STATUS_TEXT = {
    400: "The request is malformed or a field is wrong; the error names the field.",
    401: "An unknown or revoked API key, or none where one is required.",
    402: "The API key has no credits left.",
    404: "Not found (an unknown language lists the known ones).",
    405: "Wrong method.",
    413: "The code, or the whole body, is over its ceiling.",
    429: "Over the rate limit or the runs allowed at once (see Retry-After and retryAfter).",
    503: "Every slot is busy (see Retry-After), or the host can't isolate code.",
}
CONVERTER_FORMATS = {"uuid": {"type": "string", "format": "uuid"}, "int": {"type": "integer"}}


def _operations(patterns, prefix: str = ""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _operations(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern) and hasattr(p.callback, "operation"):
            yield prefix + str(p.pattern), p.callback


def _path(route: str) -> tuple[str, dict[str, str]]:
    kinds = {}

    def param(m: re.Match) -> str:
        kinds[m.group(2)] = m.group(1) or "str"
        return "{" + m.group(2) + "}"

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", param, route), kinds


def _titles() -> str:
    titles = [lang.title for lang in conf.get().languages]
    return ", ".join(titles[:-1]) + f" and {titles[-1]}" if len(titles) > 1 else "".join(titles)


def _flag_patterns(config, field: str) -> list[str]:
    """Every pattern some language allows for compilerOptions or runArgs (which language takes
    which is a rule across fields, in docs/languages.md and checked by validation)."""
    found = []
    for lang in config.languages:
        stage = lang.compile if field == "compilerOptions" else lang.run
        found += [f"^(?:{p})$" for p in (stage.options if stage else ())]
    return list(dict.fromkeys(found))


def document(request=None) -> dict:
    ops = list(_operations(get_resolver().url_patterns))
    keys = {(ErrorResponse, "serialization")}
    for _, view in ops:
        op = view.operation
        if op.request:
            keys.add((op.request, "validation"))
        if op.response:
            keys.add((op.response, "serialization"))
    refs, defs = models_json_schema(sorted(keys, key=lambda k: k[0].__name__), ref_template=REF)
    config = conf.get()
    paths: dict[str, dict] = {}
    for route, view in ops:
        op = view.operation
        path, kinds = _path(route)
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": op.path_params.get(name, ""),
                "schema": CONVERTER_FORMATS.get(kind, {"type": "string"}),
            }
            for name, kind in kinds.items()
        ]
        params += [
            {"name": n, "in": "query", "required": req, "description": d, "schema": {"type": "string"}}
            for n, req, d in op.query
        ]
        entry: dict = {"summary": op.summary, "operationId": view.__name__, "responses": {}}
        if params:
            entry["parameters"] = params
        if op.request:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.request, "validation")]}},
            }
        if op.response:
            schema = refs[(op.response, "serialization")]
            if op.many:
                schema = {"type": "array", "items": schema}
            entry["responses"]["200"] = {
                "description": "OK, as it was already" if op.created else "OK",
                "content": {"application/json": {"schema": schema}},
            }
            if op.created:
                entry["responses"]["201"] = {
                    "description": "Created",
                    "content": {"application/json": {"schema": schema}},
                }
            if op.links:
                entry["responses"]["200"]["links"] = op.links
        else:
            entry["responses"]["200"] = {"description": "OK", "content": {"application/json": {}}}
        error_schema = refs[(ErrorResponse, "serialization")]
        for status in op.errors:
            entry["responses"][str(status)] = {
                "description": STATUS_TEXT.get(status, ""),
                "content": {"application/json": {"schema": error_schema}},
            }
        paths.setdefault(path, {})[op.method.lower()] = entry
    limits = config.defaults
    schemas = defs.get("$defs", {})
    # What validation checks beyond the types: the limits' minimum and the server's ceiling
    # (an API key may carry higher ones), file names, and arguments without NUL.
    part = validation.FILE_PART.pattern
    for name in ("RunRequest", "SocketRun"):
        props = schemas.get(name, {}).get("properties", {})
        if "files" in props:
            props["files"]["propertyNames"] = {
                "pattern": f"^{part}(/{part}){{0,{validation.MAX_FILE_DEPTH - 1}}}$"
            }
            props["files"]["maxProperties"] = config.max_files
        if "args" in props:
            props["args"]["items"]["pattern"] = "^[^\\u0000]*$"
        for field in ("compilerOptions", "runArgs"):
            if field in props:
                props[field]["items"]["anyOf"] = [{"pattern": p} for p in _flag_patterns(config, field)]
        for field, low, high in (
            ("timeout", 1, config.max_timeout_ms),
            ("memory", 16, config.max_memory_mib),
            ("compileTimeout", 1, config.max_compile_timeout_ms),
            ("compileMemory", validation.MIN_COMPILE_MEMORY_MIB, config.max_compile_memory_mib),
        ):
            if field in props:
                for option in props[field].get("anyOf", [props[field]]):
                    if option.get("type") == "integer":
                        option.update(minimum=low, maximum=high)
    if "BatchRequest" in schemas:
        schemas["BatchRequest"]["properties"]["runs"]["maxItems"] = config.max_batch
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Code playground API",
            "version": "1.0.0",
            "description": (
                f"Runs {_titles()} in a fresh sandbox per run. "
                f"Languages: {', '.join(lang.name for lang in conf.get().languages)}. Default limits: {limits.timeout_ms} ms "
                f"(ceiling {config.max_timeout_ms} ms), {limits.memory_mib} MiB (ceiling "
                f"{config.max_memory_mib} MiB), {limits.processes} processes, {limits.output_bytes} bytes "
                f"of output, code up to {config.max_code_bytes} bytes."
            ),
        },
        "servers": [{"url": request.build_absolute_uri("/").rstrip("/")}] if request else [],
        "paths": paths,
        "components": {"schemas": schemas},
    }
