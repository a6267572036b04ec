#!/usr/bin/env python3
"""A fake of Microsoft Graph's sendMail and of the Gmail API's messages/send, for what nothing here reproduces:
their wire formats, their refusals and their throttling.

POST /v1.0/users/{mailbox}/sendMail: `Authorization: Bearer` with a token listed in --access-tokens (else 401
  InvalidAuthenticationToken), `Content-Type: text/plain`, the MIME message in base64 (else 400
  ErrorMimeContentInvalidBase64String); more than 4 MB of body is 413. Accepted: 202, empty body.
POST /upload/gmail/v1/users/{mailbox}/messages/send?uploadType=media: the same token check (401 with Google's
  body), `Content-Type: message/rfc822`, the MIME message as it is. Accepted: 200 {"id", "threadId", "labelIds"}.
Errors are the providers' JSON: Graph {"error": {"code", "message"}}, Google {"error": {"code", "message",
  "errors": [{"message", "domain", "reason"}], "status"}}.
Graph's way for large messages: POST /v1.0/users/{mailbox}/messages (a JSON draft: 201 with its id), POST
  .../messages/{id}/attachments (a fileAttachment with contentBytes: 201), POST
  .../messages/{id}/attachments/createUploadSession (201 with an uploadUrl), PUT uploadUrl with Content-Range
  chunks (no Authorization header; each chunk but the last a multiple of 320 KiB; 200 with nextExpectedRanges,
  201 on the last), POST .../messages/{id}/send (202; printed as {"api": "graph-draft", "mailbox", "subject", "to",
  "bcc", "attachments": [{"name", "size", "sha256"}]}), DELETE .../messages/{id} (204). Every Graph request body is
  limited to 4 MB (413).
Control (GET): /control/throttle?count=N&retry_after=S (the next N sends answer 429 with Retry-After: S),
  /control/refuse?status=403&code=ErrorSendAsDenied&count=N (the next N sends answer that), /control/stats
  ({"peak": the most requests in flight at once per mailbox, "requests": n}).
Each accepted message is printed as a JSON line {"api", "mailbox", "data"}; prints `READY <port>` first.
"""

import argparse
import base64
import hashlib
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=0)
p.add_argument("--access-tokens", required=True)
p.add_argument("--delay", type=float, default=0.0, help="seconds each send takes")
ARGS = p.parse_args()

LOCK = threading.Lock()
THROTTLE = {"count": 0, "retry_after": 1}
REFUSE = {"count": 0, "status": 403, "code": "ErrorSendAsDenied"}
IN_FLIGHT = {}
STATS = {"peak": 0, "requests": 0}
GRAPH_LIMIT = 4 * 1024 * 1024
DRAFTS = {}    # id -> {"mailbox", "draft", "attachments": [(name, bytes)]}
SESSIONS = {}  # id -> {"draft", "name", "size", "data"}


def valid_tokens():
    try:
        return set(open(ARGS.access_tokens).read().split())
    except FileNotFoundError:
        return set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=None, headers=()):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        with LOCK:
            if url.path == "/control/throttle":
                THROTTLE.update(count=int(q.get("count", "1")), retry_after=int(q.get("retry_after", "1")))
            elif url.path == "/control/refuse":
                REFUSE.update(count=int(q.get("count", "1")), status=int(q.get("status", "403")), code=q.get("code", "ErrorSendAsDenied"))
            elif url.path == "/control/stats":
                return self.answer(200, dict(STATS))
            else:
                return self.answer(404, {"error": {"code": "NotFound", "message": "no such control"}})
        self.answer(200, {"ok": True})

    def authorized(self):
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in valid_tokens()

    def graph_error(self, status, code, message):
        return self.answer(status, {"error": {"code": code, "message": message}})

    def do_DELETE(self):
        parts = urllib.parse.urlparse(self.path).path.split("/")
        if not self.authorized():
            return self.graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        with LOCK:
            DRAFTS.pop(parts[-1], None)
        self.answer(204)

    def do_PUT(self):
        parts = urllib.parse.urlparse(self.path).path.split("/")
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if len(parts) != 3 or parts[1] != "upload":
            return self.graph_error(404, "ItemNotFound", "no such upload session")
        if "Authorization" in self.headers:
            return self.graph_error(401, "InvalidAuthenticationToken", "the upload URL carries its own authorization")
        with LOCK:
            session = SESSIONS.get(parts[2])
            if session is None:
                return self.graph_error(404, "ItemNotFound", "no such upload session")
            try:
                span, total = self.headers.get("Content-Range", "").split(" ")[1].split("/")
                first, last = (int(x) for x in span.split("-"))
            except Exception:
                return self.graph_error(400, "InvalidRequest", "Content-Range is required")
            done = len(session["data"])
            if first != done or last - first + 1 != len(body) or int(total) != session["size"]:
                return self.graph_error(416, "InvalidRange", f"expected bytes {done}-")
            if last + 1 < session["size"] and len(body) % (320 * 1024):
                return self.graph_error(400, "InvalidRequest", "a chunk must be a multiple of 320 KiB")
            session["data"] += body
            if len(session["data"]) < session["size"]:
                return self.answer(200, {"expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": [f"{len(session['data'])}-"]})
            DRAFTS[session["draft"]]["attachments"].append((session["name"], bytes(session["data"])))
            del SESSIONS[parts[2]]
        self.answer(201, {})

    def draft_request(self, parts, body):
        """Graph's draft endpoints: /v1.0/users/{mailbox}/messages[/{id}[/attachments[/createUploadSession]|/send]]."""
        if not self.authorized():
            return self.graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if len(body) > GRAPH_LIMIT:
            return self.graph_error(413, "RequestEntityTooLarge", "The request is too large.")
        mailbox, rest = urllib.parse.unquote(parts[3]), parts[5:]
        with LOCK:
            if not rest:
                draft_id = "AAMk" + secrets.token_hex(8)
                DRAFTS[draft_id] = {"mailbox": mailbox, "draft": json.loads(body), "attachments": []}
                return self.answer(201, {"id": draft_id, "isDraft": True})
            draft = DRAFTS.get(rest[0])
            if draft is None:
                return self.graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            if rest[1:] == ["attachments"]:
                item = json.loads(body)
                draft["attachments"].append((item["name"], base64.b64decode(item["contentBytes"])))
                return self.answer(201, {"id": secrets.token_hex(4)})
            if rest[1:] == ["attachments", "createUploadSession"]:
                item = json.loads(body)["AttachmentItem"]
                session = secrets.token_hex(8)
                SESSIONS[session] = {"draft": rest[0], "name": item["name"], "size": item["size"], "data": bytearray()}
                url = f"http://127.0.0.1:{self.server.server_address[1]}/upload/{session}"
                return self.answer(201, {"uploadUrl": url, "expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": ["0-"]})
            if rest[1:] == ["send"]:
                d = DRAFTS.pop(rest[0])
                who = lambda key: [r["emailAddress"]["address"] for r in d["draft"].get(key, [])]
                print(json.dumps({"api": "graph-draft", "mailbox": d["mailbox"], "subject": d["draft"].get("subject"),
                                  "to": who("toRecipients"), "bcc": who("bccRecipients"),
                                  "attachments": [{"name": n, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in d["attachments"]]}), flush=True)
                return self.answer(202)
        return self.graph_error(400, "BadRequest", "Unsupported segment")

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        parts = url.path.split("/")
        if url.path.startswith("/v1.0/users/") and len(parts) >= 5 and parts[4] == "messages":
            return self.draft_request(parts, body)
        if url.path.startswith("/v1.0/users/") and url.path.endswith("/sendMail") and len(parts) == 5:
            api, mailbox = "graph", urllib.parse.unquote(parts[3])
        elif url.path.startswith("/upload/gmail/v1/users/") and url.path.endswith("/messages/send") and len(parts) == 8:
            api, mailbox = "gmail", urllib.parse.unquote(parts[5])
        else:
            return self.answer(404, {"error": {"code": "BadRequest", "message": f"Resource not found for the segment '{url.path}'."}})
        with LOCK:
            STATS["requests"] += 1
            IN_FLIGHT[mailbox] = IN_FLIGHT.get(mailbox, 0) + 1
            STATS["peak"] = max(STATS["peak"], IN_FLIGHT[mailbox])
        try:
            if ARGS.delay:
                time.sleep(ARGS.delay)
            return self.send_mail(api, mailbox, body, url)
        finally:
            with LOCK:
                IN_FLIGHT[mailbox] -= 1

    def send_mail(self, api, mailbox, body, url):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in valid_tokens():
            if api == "graph":
                return self.answer(401, {"error": {"code": "InvalidAuthenticationToken", "message": "Access token validation failure. Invalid audience."}})
            return self.google(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", "authError", "UNAUTHENTICATED")
        with LOCK:
            if THROTTLE["count"] > 0:
                THROTTLE["count"] -= 1
                after = [("Retry-After", str(THROTTLE["retry_after"]))]
                if api == "graph":
                    return self.answer(429, {"error": {"code": "ApplicationThrottled", "message": "Application is over its MailboxConcurrency limit."}}, after)
                return self.google(429, "User-rate limit exceeded.", "rateLimitExceeded", "RESOURCE_EXHAUSTED", after)
            if REFUSE["count"] > 0:
                REFUSE["count"] -= 1
                if api == "graph":
                    return self.answer(REFUSE["status"], {"error": {"code": REFUSE["code"], "message": f"refused: {REFUSE['code']}"}})
                return self.google(REFUSE["status"], f"refused: {REFUSE['code']}", REFUSE["code"], "FAILED_PRECONDITION")
        if api == "graph":
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "text/plain":
                return self.answer(400, {"error": {"code": "ErrorMimeContentInvalidBase64String", "message": "Invalid base64 string for MIME content."}})
            if len(body) > GRAPH_LIMIT:
                return self.answer(413, {"error": {"code": "RequestEntityTooLarge", "message": "The request is too large."}})
            try:
                data = base64.b64decode(body, validate=True)
            except Exception:
                return self.answer(400, {"error": {"code": "ErrorMimeContentInvalidBase64String", "message": "Invalid base64 string for MIME content."}})
        else:
            if dict(urllib.parse.parse_qsl(url.query)).get("uploadType") != "media" or \
                    self.headers.get("Content-Type", "").split(";")[0].strip() != "message/rfc822":
                return self.google(400, "Media type not supported.", "badContent", "INVALID_ARGUMENT")
            data = body
        print(json.dumps({"api": api, "mailbox": mailbox, "data": data.decode("utf-8", "replace")}), flush=True)
        if api == "graph":
            return self.answer(202)
        ident = secrets.token_hex(8)
        return self.answer(200, {"id": ident, "threadId": ident, "labelIds": ["SENT"]})

    def google(self, status, message, reason, state, headers=()):
        self.answer(status, {"error": {"code": status, "message": message,
                                       "errors": [{"message": message, "domain": "global", "reason": reason}],
                                       "status": state}}, headers)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
