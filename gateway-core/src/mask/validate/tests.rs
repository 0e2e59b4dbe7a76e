use super::*;

#[test]
fn luhn_accepts_known_test_cards_and_rejects_one_digit_off() {
    assert!(luhn("4111 1111 1111 1111"));
    assert!(luhn("79927398713"));
    assert!(!luhn("4111 1111 1111 1112"));
    assert!(!luhn("0"));
    assert!(!luhn(""));
}

#[test]
fn credit_card_needs_prefix_length_and_luhn() {
    assert!(credit_card("4111-1111-1111-1111"));
    assert!(credit_card("5555555555554444"));
    assert!(credit_card("378282246310005"));
    assert!(credit_card("6011111111111117"));
    assert!(credit_card("2223003122003222"));
    // Luhn-valid but no issuer starts with 1 or 9.
    assert!(!credit_card("1000000000000008"));
    // Amex prefix with Visa length.
    assert!(!credit_card("3782822463100051"));
    assert!(!credit_card("41111111111111"));
    assert!(!credit_card("4111111111111112"));
}

#[test]
fn mod97_and_iban_country_lengths() {
    assert!(iban("GB82WEST12345698765432"));
    assert!(iban("DE89370400440532013000"));
    assert!(iban("NL91ABNA0417164300"));
    assert!(mod97("GB82 WEST 1234 5698 7654 32"));
    assert!(!iban("GB82WEST12345698765433"));
    // Right checksum rules but the length of another country.
    assert!(!iban("DE8937040044053201300"));
    assert!(!iban("XX82WEST12345698765432"));
    assert!(!iban("gb82west12345698765432"));
    assert!(!iban("GB8"));
    assert!(!mod97("GB82-WEST"));
}

#[test]
fn ssn_excludes_never_assigned_ranges() {
    assert!(us_ssn("536-22-1947"));
    assert!(us_ssn("536221947"));
    for bad in [
        "000-12-3456",
        "666-12-3456",
        "912-12-3456",
        "536-00-1947",
        "536-22-0000",
        "078-05-1120",
        "123-45-6789",
        "111-11-1111",
    ] {
        assert!(!us_ssn(bad), "{bad}");
    }
}

#[test]
fn ip_addresses() {
    assert!(ipv4("192.168.1.20"));
    assert!(ipv4("8.8.8.8"));
    assert!(!ipv4("999.1.1.1"));
    assert!(!ipv4("1.2.3"));
    assert!(!ipv4("01.2.3.4"));
    assert!(!ipv4("1.2.3.4.5"));
    assert!(ipv6("2001:db8::8a2e:370:7334"));
    assert!(ipv6("fe80::1ff:fe23:4567:890a"));
    assert!(ipv6("::1"));
    assert!(!ipv6("10:22:33"));
    assert!(!ipv6("00:1A:2B:3C:4D:5E"));
    assert!(!ipv6("a::b"));
}

#[test]
fn jwt_header_must_decode() {
    let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    assert!(jwt(t));
    assert!(!jwt("eyJnotbase64!!.eyJx.abc"));
    assert!(!jwt(""));
}

#[test]
fn phone_digit_counts() {
    assert!(phone("+1 415 555 2671"));
    assert!(phone("+442079460958"));
    assert!(!phone("+0 123 456 789"));
    assert!(!phone("+12 34"));
    assert!(phone("(415) 555-2671"));
    assert!(phone("020 7946 0958"));
    assert!(!phone("(115) 555-2671"));
}
