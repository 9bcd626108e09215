"""AWS Signature Version 4 verification for the endpoint's ``--credentials``.

botocore signs every request (``Authorization: AWS4-HMAC-SHA256 Credential=…/date/region/
dynamodb/aws4_request, SignedHeaders=…, Signature=…`` and ``X-Amz-Date``). The endpoint rebuilds
the canonical request from what it received (method, path, query, the signed headers, the body's
SHA-256), derives the signing key from the secret of that access key id, and compares signatures
in constant time. Any region and the service names ``dynamodb`` and ``streams.dynamodb`` are
accepted: the credential scope is the client's business, not a second check. A request more
than 15 minutes off the server's clock is refused, as AWS does.

The credentials file holds ``ACCESS_KEY_ID SECRET`` pairs, one a line (``#`` starts a comment;
``:`` or ``=`` may separate them), or an AWS shared-credentials file
(``aws_access_key_id``/``aws_secret_access_key`` per section).
"""

from __future__ import annotations

import configparser
import datetime as dt
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from urllib.parse import quote, unquote

from .errors import DynamoDBError

__all__ = ["load_credentials", "verify"]

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)"
    r"\s*,\s*Signature=(?P<sig>[0-9a-f]{64})\s*$"
)
MAX_SKEW = dt.timedelta(minutes=15)


def load_credentials(path: str | os.PathLike[str]) -> dict[str, str]:
    """Access key id -> secret, from a pairs file or an AWS shared-credentials file.

    :raises ValueError: if the file holds no credentials or a malformed line.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out: dict[str, str] = {}
    if re.search(r"^\s*\[", text, re.M):
        cp = configparser.ConfigParser()
        cp.read_string(text)
        for section in cp.sections():
            key = cp.get(section, "aws_access_key_id", fallback=None)
            secret = cp.get(section, "aws_secret_access_key", fallback=None)
            if key and secret:
                out[key.strip()] = secret.strip()
    else:
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = re.split(r"\s*[:=\s]\s*", line, maxsplit=1)
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"{path}:{n}: expected 'ACCESS_KEY_ID SECRET'")
            out[parts[0]] = parts[1]
    if not out:
        raise ValueError(f"{path}: no credentials found")
    return out


def _canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&") if query else []:
        k, _, v = part.partition("=")
        pairs.append((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def _signature_mismatch() -> DynamoDBError:
    return DynamoDBError(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service "
        "documentation for details.")


def verify(
    credentials: Mapping[str, str], method: str, path: str, query: str,
    headers: Mapping[str, str], body: bytes, *, now: dt.datetime | None = None,
) -> str:
    """Check a request's SigV4 signature; return the access key id that signed it.

    :param headers: lower-case header names to values (repeated headers joined by ``,``).
    :raises DynamoDBError: ``MissingAuthenticationTokenException``,
        ``IncompleteSignatureException``, ``UnrecognizedClientException`` (unknown key),
        ``InvalidSignatureException`` (bad signature or clock skew), with AWS's messages.
    """
    auth = headers.get("authorization")
    if not auth:
        raise DynamoDBError("MissingAuthenticationTokenException",
                            "Request is missing Authentication Token")
    m = _AUTH.match(auth.strip())
    if m is None:
        raise DynamoDBError("IncompleteSignatureException",
                            f"Authorization header requires 'Credential', 'Signature' and "
                            f"'SignedHeaders' parameters. Authorization={auth[:40]}")
    cred = m["cred"].split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise DynamoDBError("IncompleteSignatureException",
                            f"Credential should be scoped to a valid region. ({m['cred']})")
    key_id, date, region, service, _ = cred
    secret = credentials.get(key_id)
    if secret is None:
        raise DynamoDBError("UnrecognizedClientException",
                            "The security token included in the request is invalid.")
    amz_date = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise DynamoDBError("IncompleteSignatureException",
                            "Authorization header requires existence of either a "
                            "'X-Amz-Date' or a 'Date' header.") from None
    now = now or dt.datetime.now(dt.UTC)
    if abs(now - when) > MAX_SKEW or not amz_date.startswith(date):
        raise DynamoDBError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - MAX_SKEW).strftime('%Y%m%dT%H%M%SZ')} "
            f"({now.strftime('%Y%m%dT%H%M%SZ')} - 15 min.)")
    signed = m["signed"].split(";")
    if "host" not in signed:
        raise _signature_mismatch()
    canon_headers = "".join(
        f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    payload = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256") == "UNSIGNED-PAYLOAD":
        payload = "UNSIGNED-PAYLOAD"
    canonical = "\n".join([
        method, quote(path or "/", safe="/-_.~%"), _canonical_query(query), canon_headers,
        m["signed"], payload,
    ])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    expected = hmac.new(_signing_key(secret, date, region, service), to_sign.encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, m["sig"]):
        raise _signature_mismatch()
    return key_id
