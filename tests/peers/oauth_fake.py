#!/usr/bin/env python3
"""A fake of Microsoft's v2.0 token endpoint, for what no real OAuth server here reproduces: refresh-token
rotation as Microsoft does it, AADSTS errors (`error_description` starting `AADSTSnnnn:`, `error_codes`,
`trace_id`, `correlation_id`), and outages.

GET /{tenant}/oauth2/v2.0/authorize (client_id, response_type=code, redirect_uri, scope, state,
  code_challenge, code_challenge_method=S256) redirects straight back to redirect_uri with a code and the state
  (as if the user had signed in and consented), or with error=access_denied after /control/deny.
POST /{tenant}/oauth2/v2.0/token (form-encoded), grant_type=authorization_code (code, redirect_uri,
  code_verifier checked against the S256 challenge; a code works once), or grant_type=refresh_token:
  a known refresh token gets {"token_type":"Bearer","scope":...,"expires_in":N,"ext_expires_in":N,
  "access_token":...,"refresh_token":<a new one>}; the old refresh token stays valid (as Microsoft's do).
  An unknown or revoked one gets 400 invalid_grant AADSTS70000 (or the code set by --revoked-code).
grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer is Google's service-account grant: the assertion's
  signature checked against --client-certificates (else invalid_grant "Invalid JWT Signature."), iss against
  --service-account, aud and a lifetime of at most an hour, sub among --domain-users ("Invalid email or User ID"),
  and each scope among --delegated-scopes (else 401 unauthorized_client, as without domain-wide delegation).
A request with a client_assertion (RFC 7523, any grant) is checked against the certificates in
  --client-certificates: RS256, the x5t#S256 header naming a registered certificate (else 401 AADSTS700027), the
  signature, aud = the token endpoint's URL (AADSTS50013), iss = sub = client_id (AADSTS700021), and nbf/exp
  around now (AADSTS700024).
POST /{tenant}/oauth2/v2.0/devicecode (client_id, scope) starts a device sign-in; the token endpoint then takes
  grant_type=client_credentials (needs client_secret and a scope ending in /.default; no refresh token),
  grant_type=urn:ietf:params:oauth:grant-type:device_code: authorization_pending until /control/approve (or
  authorization_declined after /control/decline); with --slow-down-once the first poll answers slow_down.
  With --google, Google's spellings: verification_url, no message, polling errors as HTTP 428 (pending) and 403
  (slow_down, access_denied), and invalid_scope for the Gmail scope.
Control (GET, loopback only): /control/issue?refresh_token=X  (makes X valid), /control/revoke (revokes every
refresh token), /control/outage?count=N (the next N token requests answer 503), /control/delegate?scopes=S (the
scopes domain-wide delegation grants from now on).
Valid access tokens are written, one a line, to --access-tokens FILE (for the SMTP peer's --token-file); an
access token leaves the file when it expires.
Prints `READY <port>` once listening; requests are logged to stderr as `GRANT <grant_type> <outcome>`.
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


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--lifetime", type=int, default=3600, help="access token lifetime, seconds")
    p.add_argument("--access-tokens", required=True)
    p.add_argument("--revoked-code", type=int, default=70000)
    p.add_argument("--client-id", default="6731de76-14a6-49ae-97bc-6eba6914391e")
    p.add_argument("--google", action="store_true")
    p.add_argument("--device-interval", type=int, default=1)
    p.add_argument("--device-expires", type=int, default=900)
    p.add_argument("--slow-down-once", action="store_true")
    p.add_argument("--refresh-delay", type=float, default=0.0, help="seconds each refresh takes before its answer")
    p.add_argument("--client-certificates", help="PEM file of the certificates registered for the app (read at each request)")
    p.add_argument("--service-account", help="the service account (client_email) that may use the JWT bearer grant")
    p.add_argument("--delegated-scopes", default="", help="scopes the domain-wide delegation grants (space-separated)")
    p.add_argument("--domain-users", default="", help="the domain's users a service account may act for (comma-separated)")
    p.add_argument("--roles", default="", help="application permissions to name in the access tokens' roles claim (space-separated)")
    p.add_argument("--grants-out", help="file that gets a line per grant: GRANT <type> ok|refused|outage")
    p.add_argument("--single-use-refresh", action="store_true",
                   help="a refresh token works once (rotation with reuse refused, as OAuth 2.1 advises)")
    return p.parse_args()


ARGS = parse_args()
LOCK = threading.Lock()
REFRESH = set()
ACCESS = {}  # token -> expiry
OUTAGE = [0]
CODES = {}  # code -> (challenge, redirect_uri)
DEVICES = {}  # device_code -> "pending" | "approved" | "declined"
SLOWED = [False]
DENY = [False]
DESCRIPTIONS = {
    70000: "AADSTS70000: The provided value for the 'refresh_token' is not valid. The grant is invalid or malformed.",
    700082: "AADSTS700082: The refresh token has expired due to inactivity. The token was issued on 2026-08-01T00:00:00Z and was inactive for 90.00:00:00.",
    50173: "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed.",
}


def mint():
    """An access token: opaque, or with --roles a JWT-shaped one whose payload names them, as Entra's do."""
    if not ARGS.roles:
        return "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(24)
    claims = {"aud": "https://graph.microsoft.com", "roles": ARGS.roles.split(), "jti": secrets.token_hex(8)}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + payload + "." + secrets.token_urlsafe(24)


def log_grant(text):
    print(text, file=sys.stderr, flush=True)
    if ARGS.grants_out:
        with open(ARGS.grants_out, "a") as f:
            f.write(text + "\n")


def write_access_tokens():
    now = time.time()
    for token in [t for t, exp in ACCESS.items() if exp <= now]:
        del ACCESS[token]
    with open(ARGS.access_tokens + ".tmp", "w") as f:
        f.write("".join(t + "\n" for t in ACCESS))
    import os
    os.replace(ARGS.access_tokens + ".tmp", ARGS.access_tokens)


def expiry_sweeper():
    while True:
        time.sleep(0.2)
        with LOCK:
            write_access_tokens()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with LOCK:
            if url.path == "/control/issue":
                REFRESH.add(query["refresh_token"])
            elif url.path == "/control/revoke":
                REFRESH.clear()
            elif url.path == "/control/outage":
                OUTAGE[0] = int(query.get("count", "1"))
            elif url.path == "/control/delegate":
                ARGS.delegated_scopes = query.get("scopes", "")
            elif url.path == "/control/deny":
                DENY[0] = True
            elif url.path in ("/control/approve", "/control/decline"):
                for code in DEVICES:
                    if DEVICES[code] == "pending":
                        DEVICES[code] = "approved" if url.path.endswith("approve") else "declined"
            elif url.path.endswith("/oauth2/v2.0/authorize"):
                return self.authorize(query)
            else:
                return self.answer(404, {"error": "not_found"})
        self.answer(200, {"ok": True})

    def authorize(self, query):
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != ARGS.client_id or not redirect:
            return self.answer(400, {"error": "invalid_request", "error_description": "AADSTS700016: Application not found."})
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return self.answer(400, {"error": "invalid_request", "error_description": "AADSTS501491: Invalid size of Code_Challenge parameter."})
        if DENY[0]:
            params = {"error": "access_denied", "error_description": "AADSTS65004: User declined to consent to access the app.",
                      "state": query.get("state", "")}
        else:
            code = "0.AXoA-code-" + secrets.token_urlsafe(16)
            CODES[code] = (query["code_challenge"], redirect)
            params = {"code": code, "state": query.get("state", ""), "session_state": secrets.token_hex(8)}
        self.send_response(302)
        self.send_header("Location", redirect + ("&" if "?" in redirect else "?") + urllib.parse.urlencode(params))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        if self.path.endswith("/oauth2/v2.0/devicecode"):
            return self.devicecode(form)
        if not self.path.endswith("/oauth2/v2.0/token"):
            return self.answer(404, {"error": "not_found"})
        grant = form.get("grant_type", "")
        if grant == "refresh_token" and ARGS.refresh_delay:
            time.sleep(ARGS.refresh_delay)  # outside the lock: refreshes meanwhile run side by side
        with LOCK:
            if OUTAGE[0] > 0:
                OUTAGE[0] -= 1
                log_grant(f"GRANT {grant} outage")
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                return self.jwt_bearer(form)
            if form.get("client_id") != ARGS.client_id:
                return self.error(400, "invalid_client", 700016,
                                  f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found in the directory.")
            if "client_assertion" in form:
                refused = self.check_assertion(form)
                if refused:
                    log_grant(f"GRANT {grant} assertion-refused")
                    return self.error(*refused)
            if grant == "authorization_code":
                found = CODES.pop(form.get("code", ""), None)
                if found is None:
                    return self.error(400, "invalid_grant", 70008, "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity.")
                challenge, redirect = found
                if form.get("redirect_uri") != redirect:
                    return self.error(400, "invalid_grant", 70009, "AADSTS500112: The reply address does not match the reply address provided when requesting the authorization code.")
                digest = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest()).decode().rstrip("=")
                if digest != challenge:
                    return self.error(400, "invalid_grant", 501481, "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.")
            elif grant == "urn:ietf:params:oauth:grant-type:device_code":
                state = DEVICES.get(form.get("device_code", ""))
                if state is None:
                    return self.error(400, "expired_token", 70020, "AADSTS70020: The provided value for the input parameter 'device_code' is not valid.")
                if ARGS.slow_down_once and not SLOWED[0]:
                    SLOWED[0] = True
                    return self.error(403 if ARGS.google else 400, "slow_down", 70000, "AADSTS70000: slow down")
                if state == "pending":
                    if ARGS.google:
                        return self.answer(428, {"error": "authorization_pending", "error_description": "Precondition Required"})
                    return self.error(400, "authorization_pending", 70016, "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
                if state == "declined":
                    del DEVICES[form["device_code"]]
                    if ARGS.google:
                        return self.answer(403, {"error": "access_denied", "error_description": "Forbidden"})
                    return self.error(400, "authorization_declined", 70000, "AADSTS70000: The user declined the authorization.")
                del DEVICES[form["device_code"]]
            elif grant == "client_credentials":
                if not form.get("client_secret") and not form.get("client_assertion"):
                    return self.error(401, "invalid_client", 7000218, "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
                if not form.get("scope", "").endswith("/.default"):
                    return self.error(400, "invalid_scope", 1002012, f"AADSTS1002012: The provided value for scope {form.get('scope', '')} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
            elif grant != "refresh_token":
                return self.error(400, "unsupported_grant_type", 70003, "AADSTS70003: The app requested an unsupported grant type.")
            elif form.get("refresh_token") not in REFRESH:
                log_grant(f"GRANT {grant} refused")
                return self.error(400, "invalid_grant", ARGS.revoked_code, DESCRIPTIONS.get(ARGS.revoked_code, f"AADSTS{ARGS.revoked_code}: refused."))
            if grant == "refresh_token" and ARGS.single_use_refresh:
                REFRESH.discard(form["refresh_token"])
            access = mint()
            ACCESS[access] = time.time() + ARGS.lifetime
            body = {"token_type": "Bearer", "expires_in": ARGS.lifetime, "ext_expires_in": ARGS.lifetime, "access_token": access}
            if grant != "client_credentials":  # Microsoft issues no refresh token for app-only tokens
                rotated = "0.AXoA-" + secrets.token_urlsafe(24)
                REFRESH.add(rotated)
                body["refresh_token"] = rotated
                body["scope"] = form.get("scope", "https://outlook.office.com/SMTP.Send")
            write_access_tokens()
            log_grant(f"GRANT {grant} ok")
            self.answer(200, body)

    def registered_certificates(self):
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding
        registered = {}
        if ARGS.client_certificates:
            try:
                pem = open(ARGS.client_certificates, "rb").read()
            except FileNotFoundError:
                pem = b""
            for cert in x509.load_pem_x509_certificates(pem) if pem.strip() else []:
                der = cert.public_bytes(Encoding.DER)
                registered[base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")] = cert
        return registered

    def jwt_bearer(self, form):
        """Google's JWT bearer grant for a service account with domain-wide delegation (RFC 7523)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        google = lambda status, error, description: (log_grant(f"GRANT jwt-bearer {error}"),
                                                     self.answer(status, {"error": error, "error_description": description}))
        parts = form.get("assertion", "").split(".")
        if len(parts) != 3:
            return google(400, "invalid_grant", "Invalid JWT: Bad Request")
        decode = lambda p: base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))
        header, claims = json.loads(decode(parts[0])), json.loads(decode(parts[1]))
        signed = (parts[0] + "." + parts[1]).encode()
        def verifies(cert):
            try:
                cert.public_key().verify(decode(parts[2]), signed, padding.PKCS1v15(), hashes.SHA256())
                return True
            except Exception:
                return False
        if header.get("alg") != "RS256" or not any(verifies(c) for c in self.registered_certificates().values()):
            return google(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("iss") != ARGS.service_account:
            return google(400, "invalid_grant", "Invalid grant: account not found")
        expected = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
        now = time.time()
        if claims.get("aud") != expected or not (claims.get("iat", 0) - 300 <= now < claims.get("exp", 0)) \
                or claims["exp"] - claims["iat"] > 3600:
            return google(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
        if claims.get("sub") not in ARGS.domain_users.split(","):
            return google(400, "invalid_grant", "Invalid email or User ID")
        granted = ARGS.delegated_scopes.split()
        if not claims.get("scope") or any(s not in granted for s in claims["scope"].split()):
            return google(401, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.")
        access = "ya29.c." + secrets.token_urlsafe(24)
        ACCESS[access] = time.time() + ARGS.lifetime
        write_access_tokens()
        log_grant("GRANT jwt-bearer ok")
        self.answer(200, {"access_token": access, "expires_in": ARGS.lifetime, "token_type": "Bearer"})

    def check_assertion(self, form):
        """A client assertion (RFC 7523) checked as Entra does; the error's arguments, or None when good."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return (400, "invalid_request", 50027, "AADSTS50027: JWT token is invalid or malformed.")
        parts = form["client_assertion"].split(".")
        if len(parts) != 3:
            return (400, "invalid_request", 50027, "AADSTS50027: JWT token is invalid or malformed.")
        decode = lambda p: base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))
        header, claims = json.loads(decode(parts[0])), json.loads(decode(parts[1]))
        registered = self.registered_certificates()
        thumbprint = header.get("x5t#S256", "")
        cert = registered.get(thumbprint)
        if header.get("alg") != "RS256" or cert is None:
            return (401, "invalid_client", 700027, "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '" + thumbprint + "']")
        try:
            cert.public_key().verify(decode(parts[2]), (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return (401, "invalid_client", 700027, "AADSTS700027: Client assertion failed signature validation.")
        expected = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
        if claims.get("aud") != expected:
            return (401, "invalid_client", 50013, f"AADSTS50013: Assertion audience claim does not match the required value. The audience in the assertion was '{claims.get('aud')}' and the expected audience is '{expected}'.")
        if claims.get("iss") != ARGS.client_id or claims.get("sub") != ARGS.client_id:
            return (401, "invalid_client", 700021, "AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter.")
        now = time.time()
        if not (claims.get("nbf", 0) - 300 <= now < claims.get("exp", 0)) or claims["exp"] - claims.get("nbf", now) > 86400:
            return (401, "invalid_client", 700024, "AADSTS700024: Client assertion is not within its valid time range.")
        return None

    def devicecode(self, form):
        with LOCK:
            if form.get("client_id") != ARGS.client_id:
                return self.error(400, "invalid_client", 700016, "AADSTS700016: Application not found.")
            if ARGS.google and "https://mail.google.com/" in form.get("scope", "").split():
                return self.answer(400, {"error": "invalid_scope", "error_description": "Invalid device flow scope: https://mail.google.com/"})
            device_code = "DAQABAAEAAAD-" + secrets.token_urlsafe(16)
            user_code = secrets.token_hex(4).upper()
            DEVICES[device_code] = "pending"
            body = {"device_code": device_code, "user_code": user_code, "expires_in": ARGS.device_expires, "interval": ARGS.device_interval}
            if ARGS.google:
                body["verification_url"] = "https://www.google.com/device"
            else:
                body["verification_uri"] = "https://microsoft.com/devicelogin"
                body["message"] = f"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code {user_code} to authenticate."
        self.answer(200, body)

    def error(self, status, error, code, description):
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        self.answer(status, {
            "error": error,
            "error_description": f"{description}\r\nTrace ID: 0b8f7a1c-0000\r\nCorrelation ID: 2c5a-0000\r\nTimestamp: {stamp}",
            "error_codes": [code], "timestamp": stamp, "trace_id": "0b8f7a1c-0000", "correlation_id": "2c5a-0000",
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        })


def main():
    with open(ARGS.access_tokens, "w"):
        pass
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    threading.Thread(target=expiry_sweeper, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
