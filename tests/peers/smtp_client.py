#!/usr/bin/env python3
"""A real SMTP client (Python's smtplib) for Tidings' gateway tests, on loopback.

Usage: smtp_client.py SCENARIO.json. The scenario: {"host", "port", "tls": "none"|"starttls"|"implicit",
"ca": CA_FILE, "steps": [...]}; each step is one of
  {"login": [user, password]}
  {"send": {"from": ..., "to": [...], "data": "..."}}          (data with \\n line ends; smtplib makes CRLF)
  {"raw": "COMMAND LINE"}                                        (docmd: one command, its reply)
  {"raw_bytes": "...", "replies": N}                             (written as is; N replies read)
  {"features": true}                                             (the EHLO keywords)
Prints one JSON object a line per step: {"ok": true, ...} or {"error": "...", "code": N, "text": "..."}.
"""

import json
import smtplib
import socket
import ssl
import sys


def main():
    scenario = json.load(open(sys.argv[1]))
    context = ssl.create_default_context(cafile=scenario["ca"]) if scenario.get("ca") else None
    host, port = scenario["host"], scenario["port"]
    try:
        if scenario.get("tls") == "implicit":
            client = smtplib.SMTP_SSL(host, port, context=context, timeout=20)
        else:
            client = smtplib.SMTP(host, port, timeout=20)
    except smtplib.SMTPConnectError as e:
        print(json.dumps({"error": "SMTPConnectError", "code": e.smtp_code, "text": e.smtp_error.decode()}), flush=True)
        return
    client.ehlo("printer.test")
    if scenario.get("tls") == "starttls":
        print(json.dumps({"before_tls": sorted(client.esmtp_features)}), flush=True)
        client.starttls(context=context)
        client.ehlo("printer.test")
    for step in scenario["steps"]:
        try:
            if "login" in step:
                code, text = client.login(*step["login"])
                print(json.dumps({"ok": True, "code": code}), flush=True)
            elif "send" in step:
                s = step["send"]
                refused = client.sendmail(s["from"], s["to"], s["data"])
                print(json.dumps({"ok": True, "refused": {k: [v[0], v[1].decode()] for k, v in refused.items()}}), flush=True)
            elif "raw" in step:
                code, text = client.docmd(step["raw"])
                print(json.dumps({"code": code, "text": text.decode()}), flush=True)
            elif "raw_bytes" in step:
                client.sock.sendall(step["raw_bytes"].encode("latin-1"))
                replies = []
                for _ in range(step["replies"]):
                    code, text = client.getreply()
                    replies.append([code, text.decode()])
                print(json.dumps({"replies": replies}), flush=True)
            elif "features" in step:
                print(json.dumps({"features": sorted(client.esmtp_features)}), flush=True)
        except smtplib.SMTPResponseException as e:
            print(json.dumps({"error": type(e).__name__, "code": e.smtp_code, "text": e.smtp_error.decode()}), flush=True)
        except smtplib.SMTPRecipientsRefused as e:
            first = next(iter(e.recipients.values()))
            print(json.dumps({"error": "SMTPRecipientsRefused", "code": first[0], "text": first[1].decode()}), flush=True)
        except (smtplib.SMTPException, OSError) as e:
            print(json.dumps({"error": type(e).__name__, "text": str(e)}), flush=True)
            return
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        pass


if __name__ == "__main__":
    main()
