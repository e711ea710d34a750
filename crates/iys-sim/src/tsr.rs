//! The time stamp IYS puts on each day's movement file (`…/agreements/{date}/timestamp`, a
//! `.tsr`): an RFC 3161 `TimeStampResp` in DER.
//!
//! IYS does not describe the file beyond its `.tsr` extension, and the simulator has no time
//! stamping authority's key: the answer is a well-formed, granted `TimeStampResp` whose token
//! carries the `TSTInfo` (the file's SHA-384 imprint, the day-end time) inside a `SignedData`
//! with no signer. Tools read it (`openssl ts -reply -text`); none can verify it, which is
//! the point of a simulator's stamp (docs/simulator.md).

use jiff::Timestamp;

/// `id-signedData` (RFC 5652).
const SIGNED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 2];
/// `id-ct-TSTInfo` (RFC 3161).
const TST_INFO: &[u64] = &[1, 2, 840, 113_549, 1, 9, 16, 1, 4];
/// `id-sha384` (RFC 5754).
const SHA384: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 2];
/// The policy of the simulator's stamps: under `2.999`, the arc ITU-T X.660 reserves for
/// examples, so it can never be mistaken for a real authority's policy.
const POLICY: &[u64] = &[2, 999, 3161];

/// A granted `TimeStampResp` for a file whose SHA-384 digest is `sha384`, stamped at `at`.
pub fn time_stamp_response(sha384: &[u8; 48], at: Timestamp) -> Vec<u8> {
    let algorithm = sequence(&[oid(SHA384), vec![0x05, 0x00]]);
    // The serial number: the digest's first 8 bytes, positive.
    let mut serial = [0u8; 8];
    serial.copy_from_slice(&sha384[..8]);
    serial[0] &= 0x7f;
    let tst_info = sequence(&[
        integer(&[1]),
        oid(POLICY),
        sequence(&[algorithm.clone(), tlv(0x04, sha384)]),
        integer(&serial),
        generalized_time(at),
    ]);
    let signed_data = sequence(&[
        integer(&[3]),
        tlv(0x31, &algorithm),
        sequence(&[oid(TST_INFO), tlv(0xa0, &tlv(0x04, &tst_info))]),
        // signerInfos: an empty SET; nobody signed.
        tlv(0x31, &[]),
    ]);
    let token = sequence(&[oid(SIGNED_DATA), tlv(0xa0, &signed_data)]);
    // PKIStatusInfo { status granted (0) }.
    sequence(&[sequence(&[integer(&[0])]), token])
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn sequence(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A non-negative INTEGER from big-endian bytes, in DER's minimal form.
fn integer(be: &[u8]) -> Vec<u8> {
    let skip = be
        .iter()
        .take_while(|b| **b == 0)
        .count()
        .min(be.len().saturating_sub(1));
    let mut content = be[skip..].to_vec();
    if content.first().is_none_or(|b| b & 0x80 != 0) {
        content.insert(0, 0);
    }
    tlv(0x02, &content)
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        _ => (0, arcs),
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            groups.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        content.extend(groups.iter().rev());
    }
    tlv(0x06, &content)
}

/// `YYYYMMDDHHMMSSZ`, in UTC as DER requires.
fn generalized_time(at: Timestamp) -> Vec<u8> {
    let text = at.strftime("%Y%m%d%H%M%SZ").to_string();
    tlv(0x18, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One DER element: (tag, content, rest).
    fn read(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = der[0];
        let (len, head) = if der[1] < 0x80 {
            (der[1] as usize, 2)
        } else {
            let n = (der[1] & 0x7f) as usize;
            let len = der[2..2 + n]
                .iter()
                .fold(0usize, |a, b| a << 8 | *b as usize);
            (len, 2 + n)
        };
        (tag, &der[head..head + len], &der[head + len..])
    }

    #[test]
    fn encodes_known_der() {
        assert_eq!(
            oid(SHA384),
            [
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02
            ]
        );
        assert_eq!(
            oid(SIGNED_DATA),
            [
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02
            ]
        );
        assert_eq!(integer(&[0]), [0x02, 0x01, 0x00]);
        assert_eq!(integer(&[0, 0, 0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0x01, 0x00]), [0x02, 0x02, 0x01, 0x00]);
        let long = tlv(0x04, &[7; 300]);
        assert_eq!(long[..4], [0x04, 0x82, 0x01, 0x2c]);
        let at = Timestamp::from_second(1_781_125_200).unwrap();
        assert_eq!(generalized_time(at)[2..], *b"20260610210000Z");
    }

    #[test]
    fn the_response_is_granted_and_carries_the_imprint_and_time() {
        let digest = [0xabu8; 48];
        let at = Timestamp::from_second(1_781_125_200).unwrap();
        let der = time_stamp_response(&digest, at);
        let (tag, resp, rest) = read(&der);
        assert_eq!((tag, rest.len()), (0x30, 0));
        let (_, status, token) = read(resp);
        assert_eq!(status, [0x02, 0x01, 0x00], "granted");
        let (_, content_info, _) = read(token);
        let (_, _signed_data_oid, explicit) = read(content_info);
        let (_, signed_data, _) = read(explicit);
        let (_, signed, _) = read(signed_data);
        let (_, _version, rest) = read(signed);
        let (_, _digest_algs, rest) = read(rest);
        let (_, encap, signers) = read(rest);
        assert_eq!(signers, [0x31, 0x00], "no signer");
        let (_, tst_oid, rest) = read(encap);
        assert_eq!(tst_oid, &oid(TST_INFO)[2..]);
        let (_, octets, _) = read(rest);
        let (_, tst_info_der, _) = read(octets);
        let (_, tst_info, _) = read(tst_info_der);
        let (_, version, rest) = read(tst_info);
        assert_eq!(version, [1]);
        let (_, _policy, rest) = read(rest);
        let (_, imprint, rest) = read(rest);
        let (_, _alg, hashed) = read(imprint);
        assert_eq!(read(hashed).1, digest);
        let (_, serial, rest) = read(rest);
        assert_eq!(serial, [0x2b, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab]);
        let (tag, time, _) = read(rest);
        assert_eq!((tag, time), (0x18, &b"20260610210000Z"[..]));
    }
}
