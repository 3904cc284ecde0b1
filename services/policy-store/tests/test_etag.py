"""Entity tags: the answer's bytes are the ones the tag was taken from, and a client holding them gets 304."""

from __future__ import annotations

import hashlib

from fastapi.responses import JSONResponse
from starlette.requests import Request

from policy_store.etag import json_with_etag

CONTENT = {"items": [{"policy": {"rule": "Đếm hệ thống theo tỉnh", "score": 0.25}, "scores": {"keyword": 0.5}}],
           "next_cursor": None}


def _request(if_none_match: str | None = None) -> Request:
    headers = [(b"if-none-match", if_none_match.encode())] if if_none_match else []
    return Request({"type": "http", "method": "GET", "path": "/v1/policies", "headers": headers})


def test_the_body_is_what_a_json_response_sends_and_the_tag_is_taken_from_it() -> None:
    answer = json_with_etag(_request(), CONTENT)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.body == JSONResponse(content=CONTENT).body
    assert answer.headers["ETag"] == '"' + hashlib.sha256(answer.body).hexdigest()[:32] + '"'


def test_a_client_holding_the_answer_gets_304_and_another_gets_the_answer() -> None:
    tag = json_with_etag(_request(), CONTENT).headers["ETag"]
    assert json_with_etag(_request(tag), CONTENT).status_code == 304
    assert json_with_etag(_request(f'"other", {tag}'), CONTENT).status_code == 304
    assert json_with_etag(_request('"other"'), CONTENT).status_code == 200
