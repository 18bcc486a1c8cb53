//! What the fuzz targets share: how an input is cut into the pieces a socket might deliver,
//! and the bounds every decoded fault must respect.

use nightcrier::events::{FaultEvent, MAX_CONTEXT_BYTES, MAX_FIELD_BYTES};

/// Inputs of the byte-stream targets start with two control bytes: flags that pick the
/// target's settings, and the seed of the split. The rest is the wire.
pub struct Framed<'a> {
    pub flags: u8,
    pub seed: u8,
    pub wire: &'a [u8],
}

impl<'a> Framed<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Framed<'a>> {
        match data {
            [flags, seed, wire @ ..] => Some(Framed {
                flags: *flags,
                seed: *seed,
                wire,
            }),
            _ => None,
        }
    }
}

/// Cuts `wire` into the pieces successive reads might return. The low two bits of `seed`
/// pick the piece sizes: 1–4, 1–16, 1–512 or 1–4096 bytes; the rest of the seed drives the
/// sizes within that range.
pub fn pieces(wire: &[u8], seed: u8) -> Vec<&[u8]> {
    let max = match seed & 3 {
        0 => 4,
        1 => 16,
        2 => 512,
        _ => 4096,
    };
    let mut state = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (state as usize % max + 1).min(rest.len());
        let (piece, tail) = rest.split_at(size);
        out.push(piece);
        rest = tail;
    }
    out
}

/// Wire strings of a decoded fault stay within the bounds `events.rs` documents, and the
/// fault id is one a log line, a file name and a dedup key can carry.
pub fn assert_fault_bounded(fault: &FaultEvent) {
    const MAX_ID: usize = 128;
    let r = &fault.resource;
    for field in [&fault.fault_type, &fault.severity, &r.kind, &r.name] {
        assert!(
            field.len() <= MAX_FIELD_BYTES,
            "field of {} bytes",
            field.len()
        );
    }
    for field in [&r.namespace, &r.api_version, &fault.timestamp]
        .into_iter()
        .flatten()
    {
        assert!(
            field.len() <= MAX_FIELD_BYTES,
            "field of {} bytes",
            field.len()
        );
    }
    for field in [&fault.subscription_id, &fault.cluster, &r.uid]
        .into_iter()
        .flatten()
    {
        assert!(field.len() <= MAX_ID, "id of {} bytes", field.len());
    }
    if let Some(context) = &fault.context {
        assert!(
            context.len() <= MAX_CONTEXT_BYTES,
            "context of {} bytes",
            context.len()
        );
    }
    assert_ne!(
        fault.cluster.as_deref(),
        Some(""),
        "empty cluster name kept"
    );
    let id = &fault.fault_id;
    assert!(
        !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_graphic()),
        "unusable fault id {id:?}"
    );
    if fault.fault_id_derived {
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "derived fault id {id:?}"
        );
    }
    let most =
        std::mem::size_of::<FaultEvent>() + MAX_CONTEXT_BYTES + 8 * MAX_FIELD_BYTES + 4 * MAX_ID;
    assert!(
        fault.held_bytes() <= most,
        "held_bytes {}",
        fault.held_bytes()
    );
}
