//! Validators: the checks that turn a regex candidate into a finding.
//!
//! Regexes only find shapes; these functions decide. Checksums (Luhn for
//! cards, ISO 7064 mod-97 for IBANs), issuer prefixes, the IBAN per-country
//! length table, SSN ranges the SSA never assigns, IP octet ranges and the
//! JWT header are what keep look-alikes (order numbers, versions, hashes)
//! unmasked. Every function is total: any input, no panic.

/// Luhn checksum over the ASCII digits of `s` (other characters ignored).
/// False when there are fewer than two digits.
pub fn luhn(s: &str) -> bool {
    let mut sum = 0u32;
    let mut count = 0usize;
    for (i, d) in s
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        count += 1;
        sum += if i % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    count >= 2 && sum.is_multiple_of(10)
}

/// ISO 7064 mod-97-10 over an alphanumeric string already rearranged or not:
/// the IBAN rule moves the first four characters to the end, maps letters to
/// 10..35 and expects remainder 1. Spaces are ignored; any other non
/// alphanumeric character fails.
pub fn mod97(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if compact.len() < 5 {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for &b in tail.iter().chain(head.iter()) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            b'a'..=b'z' => u32::from(b - b'a') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// IBAN length for a country code (ISO 13616 registry), `None` if the country
/// does not issue IBANs.
pub fn iban_length(country: &str) -> Option<usize> {
    const TABLE: &[(&str, usize)] = &[
        ("AD", 24),
        ("AE", 23),
        ("AL", 28),
        ("AT", 20),
        ("AZ", 28),
        ("BA", 20),
        ("BE", 16),
        ("BG", 22),
        ("BH", 22),
        ("BI", 27),
        ("BR", 29),
        ("BY", 28),
        ("CH", 21),
        ("CR", 22),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DJ", 27),
        ("DK", 18),
        ("DO", 28),
        ("EE", 20),
        ("EG", 29),
        ("ES", 24),
        ("FI", 18),
        ("FK", 18),
        ("FO", 18),
        ("FR", 27),
        ("GB", 22),
        ("GE", 22),
        ("GI", 23),
        ("GL", 18),
        ("GR", 27),
        ("GT", 28),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IL", 23),
        ("IQ", 23),
        ("IS", 26),
        ("IT", 27),
        ("JO", 30),
        ("KW", 30),
        ("KZ", 20),
        ("LB", 28),
        ("LC", 32),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("LY", 25),
        ("MC", 27),
        ("MD", 24),
        ("ME", 22),
        ("MK", 19),
        ("MN", 20),
        ("MR", 27),
        ("MT", 31),
        ("MU", 30),
        ("NI", 28),
        ("NL", 18),
        ("NO", 15),
        ("OM", 23),
        ("PK", 24),
        ("PL", 28),
        ("PS", 29),
        ("PT", 25),
        ("QA", 29),
        ("RO", 24),
        ("RS", 22),
        ("RU", 33),
        ("SA", 24),
        ("SC", 31),
        ("SD", 18),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("SO", 23),
        ("ST", 25),
        ("SV", 28),
        ("TL", 23),
        ("TN", 24),
        ("TR", 26),
        ("UA", 29),
        ("VA", 22),
        ("VG", 24),
        ("XK", 20),
        ("YE", 30),
    ];
    TABLE.iter().find(|(c, _)| *c == country).map(|(_, n)| *n)
}

/// A compact IBAN (no spaces): known country, its exact length, check digits
/// and mod-97.
pub fn iban(compact: &str) -> bool {
    let b = compact.as_bytes();
    if b.len() < 5
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    if !b.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    iban_length(&compact[..2]) == Some(b.len()) && mod97(compact)
}

/// Card number (separators allowed): 13–19 digits, a known issuer prefix with
/// a length that issuer uses, and Luhn.
pub fn credit_card(s: &str) -> bool {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    let n = digits.len();
    if !(13..=19).contains(&n) || !known_card_prefix(&digits) {
        return false;
    }
    luhn(s)
}

fn prefix_num(d: &[u8], k: usize) -> u32 {
    d.iter()
        .take(k)
        .fold(0u32, |acc, x| acc * 10 + u32::from(*x))
}

fn known_card_prefix(d: &[u8]) -> bool {
    let n = d.len();
    let p1 = prefix_num(d, 1);
    let p2 = prefix_num(d, 2);
    let p3 = prefix_num(d, 3);
    let p4 = prefix_num(d, 4);
    let p6 = prefix_num(d, 6);
    match p1 {
        // Visa
        4 => matches!(n, 13 | 16 | 19),
        // Mastercard (51-55, 2221-2720), Mir (2200-2204)
        5 if (51..=55).contains(&p2) => n == 16,
        2 if (2221..=2720).contains(&p4) || (2200..=2204).contains(&p4) => n == 16,
        // Amex 34/37, Diners 300-305/36/38/39, JCB 3528-3589
        3 if p2 == 34 || p2 == 37 => n == 15,
        3 if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 => {
            (14..=19).contains(&n)
        }
        3 if (3528..=3589).contains(&p4) => (16..=19).contains(&n),
        // Discover 6011, 644-649, 65, 622126-622925; UnionPay 62; Maestro 50, 56-69
        6 if p4 == 6011
            || (644..=649).contains(&p3)
            || p2 == 65
            || (622_126..=622_925).contains(&p6) =>
        {
            (16..=19).contains(&n)
        }
        6 => (13..=19).contains(&n),
        5 if p2 == 50 || (56..=59).contains(&p2) => (13..=19).contains(&n),
        _ => false,
    }
}

/// US Social Security Number digits (exactly nine digits after dropping `-`
/// and spaces): area not 000, 666 or 900–999; group not 00; serial not 0000;
/// and not a number the SSA voided publicly (078-05-1120, 219-09-9999,
/// 123-45-6789).
pub fn us_ssn(s: &str) -> bool {
    let d: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    if d.len() != 9 {
        return false;
    }
    let area = prefix_num(&d, 3);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = prefix_num(&d[5..], 4);
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    // All one digit (111-11-1111) are placeholders, not people.
    if d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let compact: String = d.iter().map(|x| char::from(b'0' + x)).collect();
    !matches!(compact.as_str(), "078051120" | "219099999" | "123456789")
}

/// Dotted-quad IPv4: four decimal octets 0–255, no leading zeros.
pub fn ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|v| v <= 255)
        })
}

/// IPv6 in any RFC 4291 text form that `std` accepts, with at least two
/// non-empty groups (so `a::b`-like scope separators in code are less likely)
/// or the loopback `::1`.
pub fn ipv6(s: &str) -> bool {
    if s.parse::<std::net::Ipv6Addr>().is_err() {
        return false;
    }
    if s == "::1" {
        return true;
    }
    let groups = s.split(':').filter(|g| !g.is_empty()).count();
    let hex = s.bytes().filter(u8::is_ascii_hexdigit).count();
    groups >= 3 || (groups >= 2 && hex >= 5 && s.contains("::"))
}

/// A JWT: three base64url parts whose first decodes to a JSON object with an
/// `alg` field.
pub fn jwt(s: &str) -> bool {
    use base64::Engine as _;
    let Some(header) = s.split('.').next() else {
        return false;
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('='))
    else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(m)) => m.contains_key("alg") || m.contains_key("typ"),
        _ => false,
    }
}

/// Phone number digits check: E.164 (`+` then 8–15 digits, country code not
/// starting with 0) or a national number of 9–11 digits whose format the
/// regex already constrained.
pub fn phone(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if let Some(rest) = s.strip_prefix('+') {
        if rest.starts_with('0') {
            return false;
        }
        return (8..=15).contains(&digits);
    }
    let national_len = (10..=11).contains(&digits) || (digits == 9 && s.starts_with('0'));
    if !national_len {
        return false;
    }
    // NANP-style (xxx) xxx-xxxx: area code starts 2-9.
    let first = s.bytes().find(u8::is_ascii_digit).unwrap_or(b'0');
    if !s.starts_with('0') && !s.starts_with("1") && first < b'2' {
        return false;
    }
    true
}

#[cfg(test)]
mod tests;
