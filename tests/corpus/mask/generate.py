#!/usr/bin/env python3
"""Generate tests/corpus/mask/generated.jsonl: labelled PII in many formats and
look-alike distractors. Deterministic (fixed seed); checksums (Luhn, mod-97)
are computed here, independently of the Rust validators.

Each line: {"text": "...", "expect": [{"type": "EMAIL", "value": "..."}]}.
An empty expect list marks a distractor that must stay untouched.

Run: python3 tests/corpus/mask/generate.py  (rewrites generated.jsonl)
"""
import base64
import json
import os
import random
import string

R = random.Random(20260811)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated.jsonl")

FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar",
         "peggy", "trent", "victor", "walter", "zoë", "li", "sofia", "mateo", "aarav", "chloe", "noah", "yuki"]
LAST = ["smith", "jones", "garcia", "muller", "dubois", "rossi", "tanaka", "nguyen", "okafor", "kowalski", "silva"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.co.uk", "example.de", "shop-example.io", "example.dev",
           "uni.example.edu", "example.fr", "sub.domain.example.net"]


def luhn_ok(d):
    s = 0
    for i, c in enumerate(reversed(d)):
        x = int(c)
        if i % 2 == 1:
            x *= 2
            if x > 9:
                x -= 9
        s += x
    return s % 10 == 0


def luhn_complete(prefix, length):
    body = prefix + "".join(R.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for c in string.digits:
        if luhn_ok(body + c):
            return body + c
    raise AssertionError


def luhn_fail(prefix, length):
    while True:
        n = prefix + "".join(R.choice(string.digits) for _ in range(length - len(prefix)))
        if not luhn_ok(n):
            return n


def group(num, sizes, sep):
    out, i = [], 0
    for s in sizes:
        out.append(num[i:i + s])
        i += s
    return sep.join(out)


def iban(country, bban):
    rearranged = bban + country + "00"
    digits = "".join(str(int(c, 36)) for c in rearranged)
    check = 98 - int(digits) % 97
    return f"{country}{check:02d}{bban}"


def email():
    f, l = R.choice(FIRST).replace("ë", "e"), R.choice(LAST)
    local = R.choice([f, f"{f}.{l}", f"{f}_{l}", f"{f}{R.randint(1, 99)}", f"{f}+news", f"{f[0]}.{l}", f"{f}-{l}"])
    if R.random() < 0.15:
        local = local.upper()
    return f"{local}@{R.choice(DOMAINS)}"


def phone():
    a = R.choice(["212", "415", "646", "312", "503", "617", "718", "206"])
    x = str(R.randint(200, 999))
    n = f"{R.randint(0, 9999):04d}"
    fmts = [
        f"+1 {a} {x} {n}", f"+1 ({a}) {x}-{n}", f"({a}) {x}-{n}", f"{a}-{x}-{n}", f"{a}.{x}.{n}",
        f"1-{a}-{x}-{n}", f"+1-{a}-{x}-{n}", f"+1{a}{x}{n}",
        f"+44 20 {R.randint(7000, 8999)} {R.randint(1000, 9999)}", f"+447700{R.randint(100000, 999999)}",
        f"020 {R.randint(7000, 8999)} {R.randint(1000, 9999)}", f"07700 {R.randint(100000, 999999)}",
        f"+33 6 {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
        f"01 {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
        f"06.{R.randint(10, 99)}.{R.randint(10, 99)}.{R.randint(10, 99)}.{R.randint(10, 99)}",
        f"+49 30 {R.randint(1000000, 99999999)}", f"030 {R.randint(1000000, 99999999)}",
        f"+81 3-{R.randint(1000, 9999)}-{R.randint(1000, 9999)}", f"+61 2 {R.randint(1000, 9999)} {R.randint(1000, 9999)}",
        f"+91 98{R.randint(10000000, 99999999)}", f"+55 11 9{R.randint(1000, 9999)}-{R.randint(1000, 9999)}",
    ]
    return R.choice(fmts)


def card():
    kind = R.choice(["visa", "visa", "mc", "mc2", "amex", "disc", "jcb", "visa13"])
    if kind == "visa":
        n = luhn_complete("4", 16)
    elif kind == "visa13":
        return luhn_complete("4", 13)
    elif kind == "mc":
        n = luhn_complete(str(R.randint(51, 55)), 16)
    elif kind == "mc2":
        n = luhn_complete(str(R.randint(2221, 2720)), 16)
    elif kind == "disc":
        n = luhn_complete("6011", 16)
    elif kind == "jcb":
        n = luhn_complete(str(R.randint(3528, 3589)), 16)
    else:
        n = luhn_complete(R.choice(["34", "37"]), 15)
        return R.choice([n, group(n, [4, 6, 5], " "), group(n, [4, 6, 5], "-")])
    return R.choice([n, group(n, [4, 4, 4, 4], " "), group(n, [4, 4, 4, 4], "-")])


def iban_value():
    c = R.choice(["DE", "GB", "FR", "NL", "ES", "IT", "CH", "BE", "AT", "PL"])
    d = lambda k: "".join(R.choice(string.digits) for _ in range(k))
    u = lambda k: "".join(R.choice(string.ascii_uppercase) for _ in range(k))
    bban = {
        "DE": lambda: d(18), "GB": lambda: u(4) + d(14), "FR": lambda: d(23), "NL": lambda: u(4) + d(10),
        "ES": lambda: d(20), "IT": lambda: u(1) + d(22), "CH": lambda: d(17), "BE": lambda: d(12),
        "AT": lambda: d(16), "PL": lambda: d(24),
    }[c]()
    v = iban(c, bban)
    if R.random() < 0.5:
        v = " ".join(v[i:i + 4] for i in range(0, len(v), 4))
    return v


def ssn_digits():
    while True:
        a = R.randint(1, 899)
        if a != 666:
            return f"{a:03d}", f"{R.randint(1, 99):02d}", f"{R.randint(1, 9999):04d}"


def ipv4():
    return ".".join(str(R.choice([R.randint(1, 255), R.randint(0, 9), 10, 192, 172])) for _ in range(4))


def ipv6():
    h = lambda: f"{R.randint(0, 0xffff):x}"
    return R.choice([
        ":".join(h() for _ in range(8)), f"2001:db8::{h()}:{h()}", f"fe80::{h()}:{h()}:{h()}:{h()}",
        f"2001:0db8:85a3:0000:0000:8a2e:0370:{R.randint(0x1000, 0xffff):04x}", "::1", f"2a00:1450:4001:{h()}::200e",
    ])


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt():
    hdr = b64url(json.dumps({"alg": R.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": str(R.randint(1, 10**9)), "name": R.choice(FIRST), "iat": 1700000000}).encode())
    sig = b64url(os.urandom(0) or bytes(R.getrandbits(8) for _ in range(32)))
    return f"{hdr}.{body}.{sig}"


def aws():
    return R.choice(["AKIA", "ASIA"]) + "".join(R.choice(string.ascii_uppercase + "234567") for _ in range(16))


def pem():
    kind = R.choice(["RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED "])
    lines = ["".join(R.choice(string.ascii_letters + string.digits + "+/") for _ in range(64)) for _ in range(R.randint(2, 5))]
    return f"-----BEGIN {kind}PRIVATE KEY-----\n" + "\n".join(lines) + f"\n-----END {kind}PRIVATE KEY-----"


def password():
    chars = string.ascii_letters + string.digits + "!%*_-."
    return "".join(R.choice(chars) for _ in range(R.randint(8, 20)))


CTX = [
    "{v}", "contact: {v}", "Customer {name} <{v}> placed order #{order}", "{name},{v},{city}", "ERROR 23505: duplicate key value ({v}) already exists",
    "note=\"call back at {v} after 5pm\"", "[{ts}] user {v} logged in", "Sent receipt to {v}.", "{{\"field\": \"{v}\"}}",
    "Kunde: {v}; Stadt: {city}", "Le client {v} a appelé", "2 items for {v} (priority)",
]


def ctx(v):
    return R.choice(CTX).format(v=v, name=R.choice(FIRST).title(), order=R.randint(1000, 99999),
                                city=R.choice(["Berlin", "Paris", "Austin", "Osaka"]),
                                ts=f"2026-0{R.randint(1, 9)}-1{R.randint(0, 9)}T10:{R.randint(10, 59)}:00Z")


def pii_lines():
    lines = []
    for _ in range(30):
        v = email(); lines.append((ctx(v), [("EMAIL", v)]))
    for _ in range(40):
        v = phone(); lines.append((ctx(v), [("PHONE", v)]))
    for _ in range(30):
        v = card(); lines.append((ctx(v), [("CREDIT_CARD", v)]))
    for _ in range(25):
        v = iban_value(); lines.append((ctx(v), [("IBAN", v)]))
    for _ in range(20):
        a, g, s = ssn_digits()
        v = R.choice([f"{a}-{g}-{s}", f"{a} {g} {s}"])
        lines.append((ctx(v), [("US_SSN", v)]))
    for _ in range(5):
        a, g, s = ssn_digits()
        v = f"{a}{g}{s}"
        lines.append((R.choice(["SSN: {v}", "ssn={v}", "Social Security No. {v}"]).format(v=v), [("US_SSN", v)]))
    for _ in range(15):
        v = ipv4(); lines.append((R.choice(["connection from {v} refused", "host={v} port=5432", "GET / from {v}:443", "{v}"]).format(v=v), [("IP_ADDRESS", v)]))
    for _ in range(10):
        v = ipv6(); lines.append((R.choice(["client [{v}]:8080", "addr {v} up", "{v}"]).format(v=v), [("IP_ADDRESS", v)]))
    for _ in range(10):
        v = jwt(); lines.append((R.choice(["Authorization header was {v}", "token {v}", "{v}"]).format(v=v), [("JWT", v)]))
    for _ in range(10):
        v = aws(); lines.append((R.choice(["aws_access_key_id = {v}", "key {v} in env", "{v}"]).format(v=v), [("AWS_ACCESS_KEY", v)]))
    for _ in range(8):
        v = pem(); lines.append((R.choice(["{v}", "found key:\n{v}\nin repo", "ssh key {v}"]).format(v=v), [("PRIVATE_KEY", v)]))
    for _ in range(30):
        p = password()
        t = R.choice([
            "password={p}", "DB_PASSWORD: {p}", '{{"api_key": "{p}"}}', "postgres://app:{p}@db.internal:5432/shop",
            "mysql://root:{p}@db-primary/orders", "redis://:{p}@cache.local:6379/0", "client_secret={p}&grant_type=client_credentials",
            "Server=db;User Id=sa;Password={p};", "export API_TOKEN='{p}'", "auth: {{token: \"{p}\"}}", "secret_key = \"{p}\"",
            "Authorization: Bearer {p}", "login failed for user bob with password '{p}'",
        ])
        lines.append((t.format(p=p), [("SECRET", p)]))
    # Mixed lines with several types.
    for _ in range(20):
        e, ph, c = email(), phone(), card()
        lines.append((f"{R.choice(FIRST).title()} | {e} | {ph} | card {c}", [("EMAIL", e), ("PHONE", ph), ("CREDIT_CARD", c)]))
    return lines


def distractors():
    d = []
    hexs = lambda k: "".join(R.choice("0123456789abcdef") for _ in range(k))
    for _ in range(12):
        d.append(f"order {luhn_fail(R.choice(['4', '51', '37', '6011']), 16)} shipped")
    for _ in range(6):
        n = luhn_fail("4", 16)
        d.append(f"ref {group(n, [4, 4, 4, 4], ' ')}")
    for _ in range(8):
        d.append(f"commit {hexs(40)} merged")
        d.append(f"sha256:{hexs(64)}")
    for _ in range(8):
        d.append(f"request id {R.choice(['550e8400-e29b-41d4-a716-446655440000', hexs(8) + '-' + hexs(4) + '-4' + hexs(3) + '-a' + hexs(3) + '-' + hexs(12)])}")
    for _ in range(8):
        d.append(f"released v{R.randint(0, 20)}.{R.randint(0, 40)}.{R.randint(0, 99)} on 2025-{R.randint(10, 12)}-{R.randint(10, 28)}")
    for _ in range(8):
        d.append(f"{R.randint(2019, 2026)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}.{R.randint(0, 999):03d}Z INFO request served in {R.randint(1, 999)}ms")
    for _ in range(8):
        d.append(f"INV-{R.randint(2019, 2026)}-{R.randint(100, 999)}-{R.randint(1000, 9999)} due {R.randint(1, 28):02d}/{R.randint(1, 12):02d}/2026")
    for _ in range(6):
        d.append(f"ORD-{R.randint(10**8, 10**9 - 1)} total ${R.randint(1, 9)},{R.randint(100, 999)}.{R.randint(10, 99)}")
    for _ in range(6):
        d.append(f"tracking {R.randint(10**11, 10**12 - 1)} zip {R.randint(10000, 99999)}-{R.randint(1000, 9999)}")
    for _ in range(6):
        d.append(f"epoch {R.randint(1600000000000, 1800000000000)} ms")
    for _ in range(6):
        d.append(f"pod web-{hexs(9)}-{hexs(5)} restarted {R.randint(1, 50)} times")
    for _ in range(6):
        c = R.choice(["DE", "GB", "FR", "NL"])
        v = iban(c, "".join(R.choice(string.digits) for _ in range({"DE": 18, "GB": 18, "FR": 23, "NL": 14}[c])))
        bad = v[:2] + f"{(int(v[2:4]) + 1) % 100:02d}" + v[4:]
        d.append(f"account {bad}")
    for _ in range(6):
        d.append(f"case {R.choice(['000', '666', '900', '987'])}-{R.randint(10, 99)}-{R.randint(1000, 9999)}")
    for _ in range(6):
        d.append(f"part {R.randint(100, 999)}-{R.randint(10, 99)}-{R.randint(1000, 9999)}-{R.randint(10, 99)}")
    fixed = [
        "999.1.1.1", "1.2.3", "version 1.2.3.4", "upgrade to 10.0.19041.1", "OID 1.3.6.1.4.1.311", "256.300.1.1 is not an address",
        "icon@2x.png", "user@localhost", "@channel please review", "email: none", "password: ", "password: null",
        "token_count=5", "max_tokens: 1024", "monkey=banana", "primary key: id", "passenger_count: 3", "bypass=true",
        "3.14159", "1e10", "localhost:8080", "10:22:33.123", "12:30", "00:1A:2B:3C:4D:5E", "std::vector<int>", "Vec::new()",
        "colour #ff00aa", "AKIA", "AKIAEXAMPLE", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ deploy-key", "order 123456789 confirmed", "ISBN 978-3-16-148410-0",
        "call me maybe", "Room 101, floor 3", "PO box 1234", "SELECT * FROM customers WHERE id = 42", "duration 1h30m15s",
        "lat 48.8566 lon 2.3522", "price 1,299.00 EUR", "build 20240115.3", "The quick brown fox jumps over the lazy dog.",
        "Überprüfung abgeschlossen: 12 Einträge", "日本語のテキスト 2024年1月15日", "emoji 🎉 party 🎂", "temperature -12.5°C at 06:00",
        "chmod 0755 /usr/local/bin", "page 2 of 17", "x = y + 1", "a == b", "key: value", "api_key: ", "password=${env:DB_PASSWORD}",
        "password=[SECRET]", "Java class com.example.Foo$Bar", "HTTP/1.1 200 OK", "Content-Length: 348", "eyJhbGciOi (truncated)",
        "ratio 16:9", "score 3-2", "1234 5678", "+1", "+100", "tel: unknown", "year 2024 2025 2026 2027",
        "ipv6 is disabled", "fe80:: is link-local", "0.0.0", "base64 dGhpcyBpcyBub3QgYSBzZWNyZXQ=", "0000 0000 0000 0000",
        "invoice 4111-1111-1111-1112", "1000 0000 0000 0008", "serial 1234-5678-9012-3456", "id 9780306406157",
    ]
    d.extend(fixed)
    return d


def main():
    rows = [{"text": t, "expect": [{"type": ty, "value": v} for ty, v in ex]} for t, ex in pii_lines()]
    rows += [{"text": t, "expect": []} for t in distractors()]
    with open(OUT, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} lines to {OUT}")


if __name__ == "__main__":
    main()
