#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for Tidings' tests, on loopback.

Prints `READY <port>` once listening, then one JSON line per accepted message:
{"mail_from", "rcpt_tos", "data", "auth_user", "mail_options", "client_port"}. Everything else goes to stderr.

Modes: --mode plain (STARTTLS offered when --cert is given), --mode tls (implicit TLS).
Authentication: --user/--password (PLAIN and LOGIN), --token (XOAUTH2, repeatable, or --token-file to re-read
the accepted tokens on every attempt), --gmail-failure (Gmail's `334 <base64 JSON>` then 535 on a bad token).
Scripted trouble: --fail STAGE=REPLY[*TIMES] for STAGE in auth, mail, rcpt, data (REPLY like
"451 4.3.0 Try again later"), --drop-data N (close the connection instead of answering the first N DATA), and --delay-data S (answer
each DATA after S seconds, to keep deliveries in flight).
A relay in trouble for a while: --trouble tls|auth with --trouble-while FILE makes, while FILE exists, every
STARTTLS handshake fail (the server answers 220 and then sends what is not TLS) or every AUTH get
`535 5.7.3 Authentication unsuccessful`. --count-connections FILE keeps the number of connections accepted so
far in FILE.
--self-signed-out FILE serves a self-signed certificate marked as a CA (as `openssl req -x509` makes one) for
127.0.0.1 and writes it to FILE; --cn-only-ca-out FILE serves a certificate naming 127.0.0.1 only in its Common
Name, signed by a throw-away CA written to FILE.
--tls-ca-out FILE makes a throw-away CA (trustme), serves a certificate for 127.0.0.1/localhost/::1 signed by
it, and writes the CA certificate to FILE.
"""

import argparse
import asyncio
import base64
import json
import time
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, syntax


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", choices=["plain", "tls"], default="plain")
    p.add_argument("--tls-ca-out")
    p.add_argument("--no-starttls", action="store_true", help="never offer STARTTLS")
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--auth-required", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--token", action="append", default=[])
    p.add_argument("--token-file")
    p.add_argument("--gmail-failure", action="store_true")
    p.add_argument("--auth-mechanisms", help="offer only these, comma-separated (e.g. LOGIN)")
    p.add_argument("--fail", action="append", default=[])
    p.add_argument("--drop-data", type=int, default=0)
    p.add_argument("--delay-data", type=float, default=0.0, help="seconds to wait before answering each DATA")
    p.add_argument("--size", type=int, default=33554432)
    p.add_argument("--pipelining", action="store_true", help="advertise PIPELINING (RFC 2920)")
    p.add_argument("--trouble", choices=["tls", "auth"])
    p.add_argument("--trouble-while")
    p.add_argument("--count-connections")
    p.add_argument("--self-signed-out")
    p.add_argument("--cn-only-ca-out")
    p.add_argument("--flawed", choices=["expired", "wrong-name"],
                   help="present a certificate issued by the CA written to --flawed-ca-out that is expired, or "
                        "names mail.example.com instead of 127.0.0.1")
    p.add_argument("--flawed-ca-out")
    p.add_argument("--thread-limit", type=int,
                   help="as Exchange Online: MAIL from a user with more sessions at once gets 432 4.3.2")
    p.add_argument("--recipient-quota", type=int,
                   help="as Exchange Online: past this many recipients per user, 554 5.2.0 SubmissionQuotaExceeded")
    p.add_argument("--stats-out", help="file kept with each user's peak sessions, messages and submission times")
    return p.parse_args()


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


class Script:
    """Replies to give instead of the normal ones, each a number of times (forever without *N)."""

    def __init__(self, rules):
        self.rules = []
        for rule in rules:
            stage, reply = rule.split("=", 1)
            times = None
            if "*" in reply:
                reply, count = reply.rsplit("*", 1)
                times = int(count)
            self.rules.append([stage, reply, times])

    def take(self, stage):
        for rule in self.rules:
            if rule[0] == stage and (rule[2] is None or rule[2] > 0):
                if rule[2] is not None:
                    rule[2] -= 1
                return rule[1]
        return None


class RelaySMTP(SMTP):
    # Commands stay limited to 512 octets (RFC 5321, enforced by Microsoft), but SASL responses sent after a
    # 334 may be long: RFC 4954 allows 12288 octets, and Microsoft's access tokens need well over 1000.
    line_length_limit = 12288 + 2

    def connection_made(self, transport):
        # Called again with the TLS transport after STARTTLS: one connection, counted once.
        if not getattr(self, "_counted", False):
            self._counted = True
            self.event_handler.connected()
        super().connection_made(transport)

    def connection_lost(self, exc):
        self.event_handler.session_ended(self.session)
        super().connection_lost(exc)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg):
        if self.event_handler.in_trouble("tls"):
            await self.push("220 2.0.0 Ready to start TLS")
            # After the client has read the reply and started its handshake: a handshake that fails, not data
            # injected before it.
            await asyncio.sleep(0.05)
            self.transport.write(b"this is not a TLS handshake\r\n" * 8)
            self.transport.close()
            return
        return await super().smtp_STARTTLS(arg)


class Handler:
    def __init__(self, args):
        self.args = args
        self.script = Script(args.fail)
        self.drops_left = args.drop_data
        self.connections = 0
        # Per authenticated user: sessions now, the most at once, recipients and submission times.
        self.sessions = {}
        self.stats = {}

    def connected(self):
        self.connections += 1
        if self.args.count_connections:
            with open(self.args.count_connections + ".tmp", "w") as f:
                f.write(str(self.connections))
            os.replace(self.args.count_connections + ".tmp", self.args.count_connections)

    def user_of(self, session):
        data = getattr(session, "auth_data", None) if session else None
        if isinstance(data, LoginPassword):
            return data.login.decode()
        return data if isinstance(data, str) else None

    def user_stats(self, user):
        return self.stats.setdefault(user, {"peak_sessions": 0, "messages": 0, "recipients": 0, "refused": 0,
                                            "submitted_at": []})

    def session_started(self, user):
        self.sessions[user] = self.sessions.get(user, 0) + 1
        stats = self.user_stats(user)
        stats["peak_sessions"] = max(stats["peak_sessions"], self.sessions[user])
        self.write_stats()

    def session_ended(self, session):
        user = self.user_of(session)
        if user is not None and getattr(session, "counted_session", False):
            self.sessions[user] -= 1
            session.counted_session = False

    def write_stats(self):
        if self.args.stats_out:
            with open(self.args.stats_out + ".tmp", "w") as f:
                json.dump(self.stats, f)
            os.replace(self.args.stats_out + ".tmp", self.args.stats_out)

    def in_trouble(self, kind):
        return self.args.trouble == kind and os.path.exists(self.args.trouble_while)

    def accepted_tokens(self):
        tokens = set(self.args.token)
        if self.args.token_file:
            try:
                with open(self.args.token_file) as f:
                    tokens.update(line.strip() for line in f if line.strip())
            except FileNotFoundError:
                pass
        return tokens

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.args.pipelining:
            # aiosmtpd reads commands one after the other, so it serves pipelined clients as they are.
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = self.script.take("mail")
        if reply:
            return reply
        user = self.user_of(session)
        if user is not None and not getattr(session, "counted_session", False):
            session.counted_session = True
            self.session_started(user)
        if self.args.thread_limit and user is not None and self.sessions[user] > self.args.thread_limit:
            self.user_stats(user)["refused"] += 1
            self.write_stats()
            return "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.script.take("rcpt")
        if reply:
            return reply
        if address.startswith("unknown"):
            return "550 5.1.1 The email account that you tried to reach does not exist."
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server, session, envelope):
        if self.drops_left > 0:
            self.drops_left -= 1
            log("dropping the connection during DATA")
            server.transport.close()
            return "421 4.4.2 connection dropped"
        if self.args.delay_data:
            await asyncio.sleep(self.args.delay_data)
        reply = self.script.take("data")
        if reply:
            return reply
        user = self.user_of(session)
        if user is not None:
            stats = self.user_stats(user)
            if self.args.recipient_quota and stats["recipients"] + len(envelope.rcpt_tos) > self.args.recipient_quota:
                stats["refused"] += 1
                self.write_stats()
                return ("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to "
                        "process message due to a permanent exception with message")
            stats["messages"] += 1
            stats["recipients"] += len(envelope.rcpt_tos)
            stats["submitted_at"].append(time.time())
            self.write_stats()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "auth_user": session.auth_data if isinstance(session.auth_data, str) else
            (session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None),
            "mail_options": envelope.mail_options,
            "client_port": session.peer[1] if session.peer else None,
        }
        print(json.dumps(record), flush=True)
        return "250 2.0.0 OK queued"

    async def auth_XOAUTH2(self, server, args):
        if len(args) == 1:
            blob = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1])
            except Exception:
                return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode XOAUTH2 response")
        fields = dict(part.split("=", 1) for part in blob.decode("utf-8", "replace").split("\x01") if "=" in part)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        scripted = self.script.take("auth") or (self.in_trouble("auth") and "535 5.7.3 Authentication unsuccessful")
        if scripted:
            return AuthResult(success=False, handled=False, message=scripted)
        if token in self.accepted_tokens():
            return AuthResult(success=True, auth_data=user)
        log(f"XOAUTH2 refused for {user}")
        if self.args.gmail_failure:
            status = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"})
            await server.challenge_auth(status)
            return AuthResult(success=False, handled=False,
                              message="535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
                                      "535 5.7.8  https://support.google.com/mail/?p=BadCredentials")
        return AuthResult(success=False, handled=False, message="535 5.7.3 Authentication unsuccessful")


def make_authenticator(args, handler):
    def authenticator(server, session, envelope, mechanism, auth_data):
        scripted = handler.script.take("auth") or (handler.in_trouble("auth") and "535 5.7.3 Authentication unsuccessful")
        if scripted:
            return AuthResult(success=False, handled=False, message=scripted)
        ok = (isinstance(auth_data, LoginPassword) and args.user is not None
              and auth_data.login.decode() == args.user and auth_data.password.decode() == args.password)
        return AuthResult(success=ok, auth_data=auth_data)
    return authenticator


def made_certificate(subject_cn, issuer_key=None, issuer_name=None, ca=False, san=True, days=(-1, 30), dns=None):
    """A certificate for 127.0.0.1 (or the DNS name `dns`) and its key, valid between the `days` from now,
    self-signed unless an issuer is given (cryptography, as trustme)."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=days[0]))
               .not_valid_after(now + datetime.timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        names = [x509.DNSName(dns)] if dns else [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert, pem, key, key_pem


def context_with(cert_pem, key_pem):
    import tempfile
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as f:
        f.write(cert_pem + key_pem)
        f.flush()
        ctx.load_cert_chain(f.name)
    return ctx


def tls_context(args):
    if args.self_signed_out:
        _, pem, _, key_pem = made_certificate("127.0.0.1", ca=True)
        with open(args.self_signed_out, "wb") as f:
            f.write(pem)
        return context_with(pem, key_pem)
    if args.cn_only_ca_out:
        ca_cert, ca_pem, ca_key, _ = made_certificate("Tidings test CA", ca=True, san=False)
        _, pem, _, key_pem = made_certificate("127.0.0.1", issuer_key=ca_key, issuer_name=ca_cert.subject, san=False)
        with open(args.cn_only_ca_out, "wb") as f:
            f.write(ca_pem)
        return context_with(pem, key_pem)
    if args.flawed:
        ca_cert, ca_pem, ca_key, _ = made_certificate("Tidings test CA", ca=True, san=False)
        if args.flawed == "expired":
            leaf = made_certificate("127.0.0.1", issuer_key=ca_key, issuer_name=ca_cert.subject, days=(-60, -2))
        else:
            leaf = made_certificate("mail.example.com", issuer_key=ca_key, issuer_name=ca_cert.subject,
                                    dns="mail.example.com")
        with open(args.flawed_ca_out, "wb") as f:
            f.write(ca_pem)
        return context_with(leaf[1], leaf[3])
    if not args.tls_ca_out:
        return None
    import trustme
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca.cert_pem.write_to_path(args.tls_ca_out)
    return ctx


async def main():
    args = parse_args()
    handler = Handler(args)
    ctx = tls_context(args)
    starttls_ctx = ctx if args.mode == "plain" and not args.no_starttls else None

    excluded = []
    if args.auth_mechanisms:
        keep = {m.strip().upper() for m in args.auth_mechanisms.split(",")}
        excluded = [m for m in ("LOGIN", "PLAIN", "XOAUTH2") if m not in keep]

    def factory():
        smtp = RelaySMTP(
            handler,
            hostname="tidings-test-relay",
            tls_context=starttls_ctx,
            require_starttls=args.require_starttls and starttls_ctx is not None,
            authenticator=make_authenticator(args, handler),
            auth_required=args.auth_required,
            auth_require_tls=False,
            data_size_limit=args.size,
            enable_SMTPUTF8=True,
            auth_exclude_mechanism=excluded,
        )
        if args.mode == "tls":
            smtp._tls_protocol = True  # implicit TLS: the session is already protected
        return smtp

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=args.host, port=args.port,
                                      ssl=ctx if args.mode == "tls" else None)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
