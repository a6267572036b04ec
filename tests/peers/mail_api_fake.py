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
Control (GET): /control/throttle?count=N&retry_after=S (the next N sends answer 429 with Retry-After: S),
  /control/refuse?status=403&code=ErrorSendAsDenied&count=N (the next N sends answer that), /control/stats
  ({"peak": the most requests in flight at once per mailbox, "requests": n}).
Each accepted message is printed as a JSON line {"api", "mailbox", "data"}; prints `READY <port>` first.
"""

import argparse
import base64
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

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        parts = url.path.split("/")
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
