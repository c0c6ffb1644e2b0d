//! DNS-Client 3008's `QueryResults` and `QueryStatus`, in the engine's terms.
//!
//! `QueryResults` is a `;`-terminated list (as logged by dnsapi.dll; seen in Sysmon event 22,
//! which reads the same provider): address records are bare literals, IPv4 ones usually as
//! IPv4-mapped IPv6 (`::ffff:1.2.3.4;`), other records `type: <n> <data>` (`type: 5
//! abc.ngrok.io;` is a CNAME), the CNAME chain first. [`answers`] turns it into the engine's
//! answer list, as the Linux sensor writes it for the same response: `1.2.3.4` for an A record,
//! the normalised target name for a CNAME.
//!
//! `QueryStatus` is a Win32 / `DNS_STATUS` code ([`reply_code`]):
//!
//! | status | meaning (winerror.h) | reply_code | reply_code_id |
//! |---|---|---|---|
//! | 0 | `ERROR_SUCCESS` | NoError | 0 |
//! | 9501 | `DNS_INFO_NO_RECORDS`: the name exists, no record of the type | NoError | 0 |
//! | 9001..=9010 | `DNS_ERROR_RCODE_FORMAT_ERROR` .. `_NOTZONE`: the server's RCODE + 9000 | FormErr, ServFail, NXDomain (9003), NotImp, Refused, YXDomain, YXRRSet, NXRRSet, NotAuth, NotZone | 1..=10 |
//! | 9016, 9017, 9018 | `DNS_ERROR_RCODE_BADSIG`, `_BADKEY`, `_BADTIME` | BADSIG, BADKEY, BADTIME | 16, 17, 18 |
//! | 87 | `ERROR_INVALID_PARAMETER` (getaddrinfo's internal probe) | ERROR_INVALID_PARAMETER | none |
//! | 1214 | `ERROR_INVALID_NETNAME` | ERROR_INVALID_NETNAME | none |
//! | 1460 | `ERROR_TIMEOUT`: no server answered | ERROR_TIMEOUT | none |
//! | 9502 | `DNS_ERROR_BAD_PACKET` | DNS_ERROR_BAD_PACKET | none |
//! | 9503 | `DNS_ERROR_NO_PACKET` | DNS_ERROR_NO_PACKET | none |
//! | 9701 | `DNS_ERROR_RECORD_DOES_NOT_EXIST` | DNS_ERROR_RECORD_DOES_NOT_EXIST | none |
//! | other | | `WIN32_<n>` | none |
//!
//! Statuses that are not a server's response code have no `reply_code_id` (CIM's numeric RCODE):
//! no DNS response said so.

use std::net::IpAddr;

use tunnelwatch_engine::dns;

/// The answers in a `QueryResults` string, in order.
pub fn answers(results: &str) -> Vec<String> {
    results
        .split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .filter_map(answer)
        .collect()
}

/// The addresses in a `QueryResults` string: its bare address literals (IPv4-mapped ones as
/// IPv4), the records that name the question's addresses. `type: <n> <data>` records are not
/// addresses, whatever their data looks like.
pub fn addresses(results: &str) -> Vec<IpAddr> {
    results
        .split(';')
        .map(str::trim)
        .filter_map(|r| r.parse::<IpAddr>().ok())
        .map(|a| match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
            v4 => v4,
        })
        .collect()
}

fn answer(record: &str) -> Option<String> {
    if let Some(rest) = record.strip_prefix("type:") {
        let rest = rest.trim_start();
        let split = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (rtype, data) = rest.split_at(split);
        let rtype: u16 = rtype.parse().ok()?;
        let data = data.trim();
        return Some(match rtype {
            // CNAME, NS, PTR, DNAME: a name, written as the Linux sensor writes it.
            5 | 2 | 12 | 39 => dns::normalize_name(data),
            _ => data.to_owned(),
        });
    }
    match record.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => Some(match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        }),
        Ok(v4) => Some(v4.to_string()),
        Err(_) => Some(record.to_owned()),
    }
}

/// `(reply_code, reply_code_id)` of a 3008 `QueryStatus` (see the table above).
pub fn reply_code(status: u32) -> (String, Option<u16>) {
    let rcode = match status {
        0 | 9501 => Some(0),
        9001..=9010 | 9016..=9018 => Some((status - 9000) as u16),
        _ => None,
    };
    if let Some(rcode) = rcode {
        let name = match rcode {
            // BADSIG and BADVERS share 16; DNS_ERROR_RCODE_BADSIG means the TSIG one.
            16 => "BADSIG",
            other => dns::rcode_name(other),
        };
        return (name.to_owned(), Some(rcode));
    }
    let name = match status {
        87 => "ERROR_INVALID_PARAMETER",
        1214 => "ERROR_INVALID_NETNAME",
        1460 => "ERROR_TIMEOUT",
        9502 => "DNS_ERROR_BAD_PACKET",
        9503 => "DNS_ERROR_NO_PACKET",
        9701 => "DNS_ERROR_RECORD_DOES_NOT_EXIST",
        other => return (format!("WIN32_{other}"), None),
    };
    (name.to_owned(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_the_bare_literals() {
        let a = addresses(
            "type: 5 tunnel.us.ngrok.com;::ffff:3.134.125.175;2600:1f16::1; type: 16 1.2.3.4;junk;",
        );
        let want: Vec<IpAddr> = vec![
            "3.134.125.175".parse().unwrap(),
            "2600:1f16::1".parse().unwrap(),
        ];
        assert_eq!(a, want);
        assert!(addresses("").is_empty());
    }

    #[test]
    fn mapped_ipv4_addresses_become_ipv4() {
        assert_eq!(answers("::ffff:1.2.3.4;"), ["1.2.3.4"]);
        assert_eq!(
            answers("::ffff:104.20.23.154;::ffff:172.66.147.243;"),
            ["104.20.23.154", "172.66.147.243"]
        );
        assert_eq!(
            answers("104.20.23.154;172.66.147.243;"),
            ["104.20.23.154", "172.66.147.243"]
        );
    }

    #[test]
    fn ipv6_addresses_are_written_canonically() {
        assert_eq!(
            answers("2a03:2880:f12f:0083:face:b00c:0000:25de;::ffff:1.2.3.4;"),
            ["2a03:2880:f12f:83:face:b00c:0:25de", "1.2.3.4"]
        );
        assert_eq!(answers("::1;"), ["::1"]);
    }

    #[test]
    fn cnames_come_first_as_names() {
        assert_eq!(answers("type: 5 abc.ngrok.io;"), ["abc.ngrok.io"]);
        assert_eq!(
            answers("type:  5 Tunnel.US.ngrok.com.;::ffff:3.134.125.175;"),
            ["tunnel.us.ngrok.com", "3.134.125.175"]
        );
        assert_eq!(
            answers(
                "type: 5 www.microsoft.com-c-3.edgekey.net;type: 5 e13678.dscb.akamaiedge.net;23.46.90.101;"
            ),
            [
                "www.microsoft.com-c-3.edgekey.net",
                "e13678.dscb.akamaiedge.net",
                "23.46.90.101"
            ]
        );
        // Other types keep their data as written.
        assert_eq!(answers("type: 16 \"v=spf1 -all\";"), ["\"v=spf1 -all\""]);
        // A malformed type is skipped, not guessed.
        assert_eq!(answers("type: x y;1.2.3.4;"), ["1.2.3.4"]);
    }

    #[test]
    fn empty_results_have_no_answers() {
        assert!(answers("").is_empty());
        assert!(answers(";").is_empty());
        assert!(answers(" ; ;").is_empty());
        // Unknown text is kept rather than lost.
        assert_eq!(answers("something;"), ["something"]);
    }

    #[test]
    fn statuses_map_to_response_codes() {
        for (status, name, id) in [
            (0, "NoError", Some(0)),
            (9501, "NoError", Some(0)),
            (9001, "FormErr", Some(1)),
            (9002, "ServFail", Some(2)),
            (9003, "NXDomain", Some(3)),
            (9004, "NotImp", Some(4)),
            (9005, "Refused", Some(5)),
            (9010, "NotZone", Some(10)),
            (9016, "BADSIG", Some(16)),
            (9018, "BADTIME", Some(18)),
            (87, "ERROR_INVALID_PARAMETER", None),
            (1460, "ERROR_TIMEOUT", None),
            (9701, "DNS_ERROR_RECORD_DOES_NOT_EXIST", None),
            (9011, "WIN32_9011", None),
            (123456, "WIN32_123456", None),
        ] {
            assert_eq!(reply_code(status), (name.to_string(), id), "{status}");
        }
    }
}
